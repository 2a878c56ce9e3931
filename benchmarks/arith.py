"""`arith`: seeded arithmetic problems that need no files (the default benchmark for the 135M model).

By default "Compute 7 + 8.": one-digit sums, where the embedded 135M model's majority vote is right on most
problems and a single sample on under half of them, so the votes can teach it (docs/results.md).
One operation with `word_problems` gives a short story ("Sam has 23 apples and buys 45 more. ...");
otherwise "Compute 23 + 45 * 12." with the usual precedence. Gold answers are exact integers as strings.
"""

from __future__ import annotations

import random
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.interfaces import Benchmark
from harness.types import Problem

OPERATIONS = "+-*"
NAMES = ("Sam", "Mia", "Leo", "Ava", "Noah", "Zoe", "Omar", "Lina", "Ben", "Maya")
ITEMS = ("apples", "stickers", "marbles", "books", "coins", "pencils", "cards", "shells")
# One-step story templates per operation; "-" stories always take the smaller number away.
STORIES = {
    "+": (
        "{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?",
        "{name} collects {a} {item} on Monday and {b} {item} on Tuesday. How many {item} does {name} collect in all?",
    ),
    "-": (
        "{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?",
        "A shop has {a} {item} and sells {b} of them. How many {item} are left in the shop?",
    ),
    "*": (
        "{name} buys {a} bags with {b} {item} in each bag. How many {item} does {name} buy in total?",
        "There are {a} boxes and each box holds {b} {item}. How many {item} are there altogether?",
    ),
}


class ArithOptions(BaseModel):
    """How many problems, of which size and shape."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(16, ge=1, le=100_000, description="Number of problems.")
    digits: int = Field(1, ge=1, le=12, description="Digits per operand: operands lie in [10^(d-1), 10^d).")
    operations: str = Field("+", description='Operations to draw from, a subset of "+-*" (e.g. "+-*").')
    steps: int = Field(1, ge=1, le=8, description="Operations per problem (2+: a 'Compute ...' expression).")
    seed: int = Field(0, description="Random seed: the same seed gives the same problems.")
    word_problems: bool = Field(False, description="Phrase one-step problems as a short story.")

    @field_validator("operations")
    @classmethod
    def _known_operations(cls, value: str) -> str:
        chosen = "".join(dict.fromkeys(value.replace(" ", "")))  # dedupe, keep order
        unknown = set(chosen) - set(OPERATIONS)
        if not chosen or unknown:
            raise ValueError(f'use a non-empty subset of "{OPERATIONS}", e.g. "+-"')
        return chosen


def evaluate(operands: list[int], operators: list[str]) -> int:
    """The value of `operands[0] op operators[0] operands[1] ...` with * before + and -."""
    terms = [operands[0]]  # the running products, each to be added or subtracted
    signs = [1]
    for operator, operand in zip(operators, operands[1:], strict=True):
        if operator == "*":
            terms[-1] *= operand
        else:
            terms.append(operand)
            signs.append(1 if operator == "+" else -1)
    return sum(sign * term for sign, term in zip(signs, terms, strict=True))


def make_problem(rng: random.Random, index: int, options: ArithOptions) -> Problem:
    """Problem number `index`, drawn from `rng`."""
    low, high = 10 ** (options.digits - 1), 10**options.digits
    operators = [rng.choice(options.operations) for _ in range(options.steps)]
    operands = [rng.randrange(low, high) for _ in range(options.steps + 1)]
    if options.steps == 1 and operators[0] == "-" and operands[0] < operands[1]:
        operands.reverse()  # "gives away more than it has" would be odd; keep one-step answers >= 0
    expression = " ".join(
        [str(operands[0])] + [f"{op} {value}" for op, value in zip(operators, operands[1:], strict=True)]
    )
    if options.word_problems and options.steps == 1:
        template = rng.choice(STORIES[operators[0]])
        prompt = template.format(name=rng.choice(NAMES), item=rng.choice(ITEMS), a=operands[0], b=operands[1])
    else:
        prompt = f"Compute {expression}."
    return Problem(
        id=f"arith-{index:04d}",
        prompt=prompt,
        answer=str(evaluate(operands, operators)),
        source="arith",
        metadata={"expression": expression, "steps": options.steps},
    )


class Arith(Benchmark):
    """Generated arithmetic word problems (no files, no network); deterministic per seed."""

    name = "arith"
    Options: ClassVar[type[BaseModel]] = ArithOptions
    # a short answer: the 135M model's step-by-step text overruns a short budget before it answers
    instruction: ClassVar[str] = "Answer with only the final number in \\boxed{}."

    def load(self) -> list[Problem]:
        rng = random.Random(self.options.seed)
        return [make_problem(rng, index, self.options) for index in range(self.options.count)]
