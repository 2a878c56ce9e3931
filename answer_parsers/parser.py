"""The built-in answer parser: last \\boxed{} (plus chosen fallbacks) and time-bounded equivalence."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.answer_parsers.equivalence import is_equivalent, shutdown, start_worker
from harness.answer_parsers.extract import extract_answer
from harness.interfaces import AnswerParser

# What `harness grade` reads when there is no box, the way graders (math-verify, lighteval) do: an answer
# phrase, then the last formula or number. TTRL voting keeps the paper's boxed-only rule (no fallbacks).
GRADE_FALLBACKS = ["answer_is", "last_math"]

class BoxedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fallbacks: list[Literal["answer_is", "last_number", "last_math"]] = Field(
        default_factory=list,
        description="Tried in order when no \\boxed{} holds an answer: 'answer_is' (the answer after 'the answer "
        "is', 'answer:', '####', in several languages), 'last_math' (the formula or standalone number that ends "
        "last, math-verify's rule for prose), 'last_number' (the last number; turns \\frac{14}{3} into 3, so off by "
        "default).",
    )
    timeout_seconds: float = Field(
        3.0, gt=0.0, le=60.0, description="Wall-clock bound of one equivalence check; a timeout is 'not equal'."
    )

    @field_validator("fallbacks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`--parser-opt fallbacks=answer_is,last_number` arrives as one string."""
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


class BoxedParser(AnswerParser):
    """Answers are the last \\boxed{}; equivalence is exact numbers, a normaliser, then math-verify."""

    name = "boxed"
    Options = BoxedOptions

    def __init__(self, options: BaseModel) -> None:
        super().__init__(options)
        start_worker()  # its imports (about a second) overlap model loading

    def extract(self, text: str) -> str | None:
        return extract_answer(text, self.options.fallbacks)

    def equivalent(self, answer: str | None, gold: str | None) -> bool:
        return is_equivalent(answer, gold, timeout=self.options.timeout_seconds)

    def close(self) -> None:
        shutdown()
