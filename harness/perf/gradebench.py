"""`harness bench` section "grader": our grader's answers/s against math-verify's on the same cases.

The cases are the peer suites' (tests/data/peer_cases/*.jsonl, see its README): 477 verdicts of eight peer
projects, bare answers and whole completions. Both graders see every case in the same process, one after
the other, with cold caches in each round (our verdict and key caches cleared and a fresh worker; sympy's
cache cleared for math-verify), so the ratio is grading speed, not cache lookups:

- ours: is_equivalent(answer, gold) for a bare answer; extraction (boxed, with `harness grade`'s fallbacks)
  then is_equivalent for a completion; math-verify in its worker process where the fast paths do not decide.
- math-verify: parse + verify in this process, as tests/peer_suites.py calls it (a bare answer wrapped in
  $...$, every call bounded by math-verify's own whole-second timeouts).

The data lives in the repository, not in the package: without it the section is skipped with a message.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

PEER_CASES = Path(__file__).resolve().parents[2] / "tests" / "data" / "peer_cases"
TIMEOUT = 3.0  # seconds per comparison, ours and math-verify's alike (as tests/peer_suites.py)
_DELIMITED = re.compile(r"(?<!\\)\$|\\\(|\\\[|\\boxed")


def load_cases(directory: Path = PEER_CASES) -> list[dict[str, Any]]:
    """Every case of every <suite>.jsonl in `directory`, in file order; [] when there is none."""
    cases = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            cases.extend(json.loads(line) for line in handle if line.strip())
    return cases


def grade_ours(cases: list[dict[str, Any]], parser) -> int:
    """Our verdicts on `cases` (extraction first for a completion); returns how many were equal."""
    from harness.answer_parsers.equivalence import is_equivalent

    equal = 0
    for case in cases:
        answer = case["answer"]
        if case["kind"] == "completion":
            answer = parser.extract(answer)
        equal += is_equivalent(answer, case["gold"], timeout=TIMEOUT)
    return equal


def _text(value: Any) -> str | None:
    from harness.answer_parsers.equivalence import as_text

    return as_text(value)


def math_verify_verdict(case: dict[str, Any]) -> bool:
    """verify(parse(gold), parse(answer)), time-bounded; a bare answer and the gold wrapped in $...$ when they
    have no math delimiters, as math-verify's documentation recommends."""
    from math_verify import parse, verify

    seconds = max(1, round(TIMEOUT))  # math-verify's timeouts are whole seconds (signal.alarm)
    answer, gold = _text(case["answer"]), _text(case["gold"])
    if not answer or not gold or not answer.strip() or not gold.strip():
        return False

    def wrapped(text: str) -> str:
        return text if _DELIMITED.search(text) else f"${text}$"

    try:
        gold_parsed = parse(wrapped(gold), parsing_timeout=seconds)
        answer_parsed = parse(answer if case["kind"] == "completion" else wrapped(answer), parsing_timeout=seconds)
        return bool(verify(gold_parsed, answer_parsed, timeout_seconds=seconds))
    except Exception:  # a stray error is "not equal", as for ours
        return False


def grade_math_verify(cases: list[dict[str, Any]]) -> int:
    return sum(math_verify_verdict(case) for case in cases)


def _cold_start() -> None:
    """Clear every cache both graders keep, and give ours a fresh worker (its start-up is not timed)."""
    import sympy.core.cache

    from harness.answer_parsers import equivalence

    equivalence.clear_all_caches()
    equivalence.shutdown()
    equivalence.start_worker(wait=True)
    sympy.core.cache.clear_cache()


def grader_figures(rounds: int, directory: Path = PEER_CASES, log=print) -> dict[str, float]:
    """answers/s of ours and of math-verify over `rounds` cold passes each (alternating, so that a load spike
    hits both), after an untimed warm-up of each (imports, lazy tables). {} when there are no cases."""
    from harness.answer_parsers.parser import GRADE_FALLBACKS, BoxedOptions, BoxedParser

    cases = load_cases(directory)
    if not cases:
        log(f"bench: grader: no peer cases in {directory} (a checkout's tests/data/peer_cases); skipped")
        return {}
    parser = BoxedParser(BoxedOptions(fallbacks=GRADE_FALLBACKS, timeout_seconds=TIMEOUT))
    try:
        grade_ours(cases, parser)  # untimed: imports, and math-verify's lazy tables (a part is not enough:
        grade_math_verify(cases)  # one case in 40 read math-verify 10-20% slower in the first timed round)
        ours_seconds = math_verify_seconds = 0.0
        for _ in range(rounds):
            _cold_start()
            started = time.perf_counter()
            ours_equal = grade_ours(cases, parser)
            ours_seconds += time.perf_counter() - started
            started = time.perf_counter()
            math_verify_equal = grade_math_verify(cases)
            math_verify_seconds += time.perf_counter() - started
    finally:
        parser.close()
    graded = len(cases) * rounds
    return {
        "grader_answers_per_s": graded / ours_seconds,
        "math_verify_answers_per_s": graded / math_verify_seconds,
        "grader_cases": float(len(cases)),
        "grader_equal": float(ours_equal),
        "math_verify_equal": float(math_verify_equal),
    }
