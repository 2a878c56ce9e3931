"""Fuzzed answers against golds: 0 false positives (issue 12).

Answers come from a fixed `random.Random(seed)` (not hypothesis: 100,000 cases are enumerated cheaply, with
no shrinking engine to pay for), and each is graded against its gold with is_equivalent:

- LaTeX junk: random tokens (digits, `\\frac`, `\\sqrt`, braces, `^`, `_`, `\\infty`, `\\pi`, `\\cdot`,
  letters, `\\boxed{`, brackets, `\\{`, commas, `%`, `$`, relations) against a few golds, `1` most of all.
  Random tokens are sometimes a real answer (`0!` is 1), so a small reader below decides: junk it rejects
  (not a well-formed answer) must never be equal; junk it evaluates to a rational number must be equal only
  to a gold of that value; anything else (symbols, lists, relations) is skipped, not graded.
- Near-misses of golds of every kind: a changed digit, a flipped sign, two entries of an ordered group
  swapped, one bracket of an interval changed, an element dropped, a letter of a word changed. Each is
  unequal by construction (the guards say why), and checked by value where the reader can evaluate both.

Any "equal" is a false positive; all of them are listed in the failure message. The 100,000 answers take
about 20 s, so they run in the default suite and in CI (docs/grading.md, "The fuzz test").
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from harness.answer_parsers import equivalence
from harness.answer_parsers.equivalence import is_equivalent, shutdown, worker_stats
from tests.fuzz_answers import (
    GOLDS,
    JUNK_GOLDS,
    JUNK_SHARE,
    MUTATIONS,
    Rejected,
    evaluate,
    junk,
    junk_must_differ,
    near_miss,
)

SEED = 20261205
FULL_ANSWERS = 100_000
TIMEOUT = 1.0  # seconds per comparison; junk that reaches the worker takes about 2 ms
BOUND = TIMEOUT + 1.5  # the timeout, a worker round trip and a loaded 2-core machine (as test_equivalence)
KINDS = {"junk"} | {mutation.__name__ for mutations in MUTATIONS.values() for mutation in mutations}


@dataclass
class FuzzReport:
    graded: int = 0
    skipped: int = 0  # junk the reader cannot call unequal (symbols, lists, relations, true equalities)
    by_kind: Counter = field(default_factory=Counter)  # "junk" or the near-miss's mutation: answers graded
    false_positives: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, answer, gold)
    seconds: float = 0.0
    slowest: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.graded} answers graded in {self.seconds:.1f} s (slowest {self.slowest:.2f} s; "
            f"{self.skipped} junk skipped): {dict(self.by_kind)}; {len(self.false_positives)} false positives"
        )


def run_fuzz(count: int, seed: int, grade: Callable[[str, str], bool]) -> FuzzReport:
    """Grade `count` fuzzed answers (about JUNK_SHARE junk, the rest near-misses) with `grade(answer, gold)`."""
    rng = random.Random(seed)
    golds = [gold for kind in GOLDS.values() for gold in kind]
    report = FuzzReport()
    started = time.perf_counter()
    while report.graded < count:
        if rng.random() < JUNK_SHARE:
            kind, gold = "junk", rng.choice(JUNK_GOLDS)
            answer = junk(rng)
            if not junk_must_differ(answer, gold):
                report.skipped += 1
                continue
        else:
            gold = rng.choice(golds)
            miss = near_miss(gold, rng)
            if miss is None:
                continue
            kind, answer = miss
        call_started = time.perf_counter()
        if grade(answer, gold):
            report.false_positives.append((kind, answer, gold))
        report.slowest = max(report.slowest, time.perf_counter() - call_started)
        report.graded += 1
        report.by_kind[kind] += 1
    report.seconds = time.perf_counter() - started
    return report


@pytest.fixture(scope="module", autouse=True)
def _worker():
    """One warm worker for the module, stopped at the end."""
    assert equivalence.start_worker(wait=True)
    yield
    shutdown()


def ours(answer: str, gold: str) -> bool:
    return is_equivalent(answer, gold, timeout=TIMEOUT)


def check(report: FuzzReport, expected: int, capsys) -> None:
    """All answers graded, both halves well represented, every call within the bound, no false positive."""
    with capsys.disabled():
        print(f"\nfuzz: {report.summary()}; worker {worker_stats()}")
    assert report.graded == expected
    assert report.by_kind["junk"] > expected // 3 and set(report.by_kind) == KINDS, report.summary()
    assert report.slowest < BOUND, report.summary()
    assert not report.false_positives, f"{len(report.false_positives)} false positives:\n" + "\n".join(
        f"  {kind}: {answer!r} == gold {gold!r}" for kind, answer, gold in report.false_positives
    )


def test_reader_rejects_junk_and_evaluates_numbers() -> None:
    """The oracle itself: well-formed arithmetic gets its exact value, symbols and lists none, junk is rejected."""
    assert evaluate("\\frac{3}{4}") == evaluate("0.75") == evaluate("$.75%$") == evaluate("\\frac34")
    assert evaluate("0!") == evaluate("\\sqrt{1}") == evaluate("{(1)}") == evaluate("\\boxed{1}") == 1
    assert evaluate("2^{3}\\cdot 5-\\frac12") == 79 / 2 and evaluate("-\\frac{-6}{4}") == 3 / 2
    for opaque in (
        "\\pi",
        "x+1",
        "2\\frac{1}{2}",
        "(1,2]",
        "x=1",
        "\\sqrt{2}",
        "1,000",
        "\\{1\\}",
        "5_8",
        "[1]",
        "e.0",
    ):
        assert evaluate(opaque) is None, opaque
    for bad in (
        "1}",
        "{1",
        "1}\\times\\frac+",
        "\\boxed{1",
        "79\\text{ya\\cup^\\left(.\\frac99",
        "()",
        "1+",
        "^2",
        "\\frac1",
        "(1]",
        "1..2",
        "\\sqrt",
        ",1",
        "1==",
        ".",
        "$",
    ):
        with pytest.raises(Rejected):
            evaluate(bad)


def test_near_misses_differ_from_their_gold() -> None:
    """Every gold yields near-misses, none equal to it as text (near_miss also checks values); the sign of
    zero is never flipped (-0 is 0) and an infinite end keeps its bracket."""
    rng = random.Random(SEED)
    for gold in (gold for kind in GOLDS.values() for gold in kind):
        misses = {near_miss(gold, rng) for _ in range(60)} - {None}
        assert misses and gold not in {answer for _, answer in misses}, gold
    assert all(m is None or m[1] != "-0" for m in (near_miss("0", rng) for _ in range(100)))
    assert all(m is None or not m[1].startswith("[-") for m in (near_miss("(-\\infty,4)", rng) for _ in range(100)))


def test_fuzz_catches_a_sloppy_grader() -> None:
    """Control: a grader that compares digits only is caught on junk ("1}" for 1) and on flipped signs, so
    a clean run of the real grader means something."""

    def digits(text: str) -> str:
        return "".join(char for char in text if char.isdigit())

    report = run_fuzz(2_000, SEED, lambda answer, gold: digits(answer) == digits(gold))
    assert {"junk", "flip_sign", "swap_entries"} <= {kind for kind, _, _ in report.false_positives}


def test_no_false_positives_on_100k_fuzzed_answers(capsys) -> None:
    """The issue's figure: 100,000 fuzzed answers (junk and near-misses of every kind of gold), none graded
    equal. About 20 s on 2 shared cores (most junk fails fast, before the worker): in the default suite and CI."""
    check(run_fuzz(FULL_ANSWERS, SEED, ours), FULL_ANSWERS, capsys)
