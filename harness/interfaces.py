"""The narrow interfaces the loop calls. Plugins subclass these; engines hide behind them.

Every plugin class has a `name` (its registry key) and an `Options` pydantic model (extra="forbid")
that the registry validates before `__init__(options, ...)` is called.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from harness.prompts import DEFAULT_INSTRUCTION
from harness.registry import NoOptions
from harness.types import Completion, Group, Problem, RolloutBatch, Verdict


class Strategy(ABC):
    """Turns the samples of one problem into a pseudo-label and one reward per sample.

    Lifecycle: one instance per run, created with the validated options and the run's seed; the loop calls
    `start_step(step)` before the step's first `label`, then `label` once per problem of the step. Its
    `state_dict()` is saved with every checkpoint and handed back to `load_state_dict` on --resume, so a
    stateful strategy (its own RNG, a running average) resumes exactly. `close()` is called at the end."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    needs_gold: ClassVar[bool] = False  # only the oracle may set this
    needs_logprobs: ClassVar[bool] = False  # True: callers without sampler log-probs (TRL) refuse it

    def __init__(self, options: BaseModel, seed: int = 0) -> None:
        self.options = options
        self.seed = seed

    @abstractmethod
    def label(self, group: Group) -> Verdict:
        """Return a Verdict with exactly len(group.completions) rewards; pseudo_label None abstains."""

    def start_step(self, step: int) -> None:  # noqa: B027 - optional hook
        """Called before the first `label` of each step (0-based; a resumed run continues the count)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-able or picklable state saved with each checkpoint (default: none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what `state_dict` returned, on --resume."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release anything held (files, processes)."""


class AnswerParser(ABC):
    """Extracts a final answer from model text and decides equivalence with another answer."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    @abstractmethod
    def extract(self, text: str) -> str | None:
        """The final answer in `text`, or None (never the empty string)."""

    @abstractmethod
    def equivalent(self, answer: str, gold: str) -> bool:
        """Whether `answer` equals `gold` mathematically. Time-bounded; never raises."""

    def close(self) -> None:  # noqa: B027 - optional hook, most parsers hold nothing
        """Release worker processes, if any."""


class Benchmark(ABC):
    """Loads a list of problems."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    # appended to each problem unless the run sets its own `instruction`
    instruction: ClassVar[str] = DEFAULT_INSTRUCTION

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    @abstractmethod
    def load(self) -> list[Problem]:
        """All problems of this benchmark (the loop applies --limit)."""


@dataclass(frozen=True)
class SamplingParams:
    """What the loop asks a sampler for."""

    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int


class Sampler(ABC):
    """A generation engine holding its own copy of the policy weights."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel, model_path: str, seed: int = 0) -> None:
        self.options = options
        self.model_path = model_path
        self.seed = seed

    @abstractmethod
    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each (already chat-formatted) prompt, in prompt order."""

    @abstractmethod
    def load_weights(self, named_tensors: Iterable[tuple[str, Any]]) -> None:
        """Replace the engine's weights in memory (HF parameter names), no disk round trip."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Shut the engine down."""


class Optimizer(ABC):
    """Owns the trainable policy; one `step` per TTRL iteration."""

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    # True: `step` trains correctly when each of several processes (harness.distributed) calls it with the
    # whole batch, e.g. by running its share of the micro-batches and summing gradients across ranks.
    # `harness run --processes N` refuses an optimizer that does not say so.
    data_parallel: ClassVar[bool] = False

    def __init__(self, options: BaseModel, model_path: str, total_steps: int, seed: int = 0) -> None:
        self.options = options
        self.model_path = model_path
        self.total_steps = total_steps
        self.seed = seed

    @abstractmethod
    def step(self, batch: RolloutBatch) -> dict[str, float]:
        """One policy update on `batch`; returns metrics (loss, kl, grad_norm, lr, entropy, ...)."""

    @abstractmethod
    def named_weights(self) -> Iterable[tuple[str, Any]]:
        """The policy's current weights, for the sampler to load."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: policy, optimizer, scheduler, step."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
