"""Peer answer-equivalence suites: load tests/data/peer_cases/*.jsonl and score our grader and math-verify.

Each case is one verdict a peer project's own tests assert (see tests/data/peer_cases/README.md for where each
suite comes from and which cases were left out). A case is scored twice:

- ours: an "answer" case goes to is_equivalent(answer, gold) directly; a "completion" case goes through
  grade_lines, the function behind `harness grade`, with the parser `harness grade` builds (boxed, with the
  "answer_is" fallback), so extraction and equivalence are both exercised.
- math-verify: parse + verify in-process, each call bounded by math-verify's own timeouts (parsing_timeout,
  timeout_seconds: SIGALRM, so call this from the main thread; elsewhere the call fails and counts as False).
  A bare answer (and every gold) is wrapped in $...$ when it has no math delimiters, as math-verify's docs
  recommend; a completion is parsed as it is.

Run `python -m tests.peer_suites` (from the repository root) for the side-by-side table.
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUITES_DIR = Path(__file__).parent / "data" / "peer_cases"
FIELDS = ("id", "kind", "answer", "gold", "expected", "source")
KINDS = ("answer", "completion")
# "<owner>/<repo>@<40-hex commit>:<path>#L<line>"
SOURCE = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}:[^#\s]+#L[0-9]+$")
TIMEOUT = 3.0  # seconds per comparison, ours and math-verify's alike
_DELIMITED = re.compile(r"(?<!\\)\$|\\\(|\\\[|\\boxed")


@dataclass
class CaseResult:
    case: dict[str, Any]
    ours: bool
    math_verify: bool
    extracted: str | None = None  # what our extraction found (completion cases)

    @property
    def ours_agrees(self) -> bool:
        return self.ours == self.case["expected"]

    @property
    def math_verify_agrees(self) -> bool:
        return self.math_verify == self.case["expected"]


@dataclass
class SuiteScore:
    cases: int = 0
    ours_agree: int = 0
    math_verify_agree: int = 0
    results: list[CaseResult] = field(default_factory=list)


def load_suites(directory: Path = SUITES_DIR) -> dict[str, list[dict[str, Any]]]:
    """{suite name: its cases in file order}, one suite per <suite>.jsonl."""
    suites = {}
    for path in sorted(directory.glob("*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            suites[path.stem] = [json.loads(line) for line in handle if line.strip()]
    return suites


def structural_problems(suites: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Everything wrong with the data's shape (empty when all is well)."""
    problems = []
    seen: set[str] = set()
    for suite, cases in suites.items():
        if not cases:
            problems.append(f"{suite}: no cases")
        for number, case in enumerate(cases, start=1):
            where = f"{suite} line {number}"
            missing = [name for name in FIELDS if name not in case]
            if missing:
                problems.append(f"{where}: missing {missing}")
                continue
            if case["id"] in seen:
                problems.append(f"{where}: duplicate id {case['id']}")
            seen.add(case["id"])
            if not str(case["id"]).startswith(f"{suite}-"):
                problems.append(f"{where}: id {case['id']!r} does not name its suite")
            if case["kind"] not in KINDS:
                problems.append(f"{where}: kind {case['kind']!r}")
            if not isinstance(case["expected"], bool):
                problems.append(f"{where}: expected must be true or false")
            if not SOURCE.match(str(case["source"])):
                problems.append(f"{where}: source {case['source']!r} does not name repo@commit:path#Lline")
            for side in ("answer", "gold"):  # NeMo-Skills passes numbers (and one None) as they are
                value = case[side]
                if case["kind"] == "completion" and side == "answer" and not isinstance(value, str):
                    problems.append(f"{where}: a completion must be a string")
                elif value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
                    problems.append(f"{where}: {side} must be a string, a number or null")
    return problems


def make_parser(timeout: float = TIMEOUT):
    """The answer parser `harness grade` builds (harness/cli.py cmd_grade): boxed, with its default fallbacks."""
    from harness.answer_parsers.parser import GRADE_FALLBACKS
    from harness.plugins import get_plugins

    options = {"fallbacks": GRADE_FALLBACKS, "timeout_seconds": timeout}
    return get_plugins()["answer_parser"].create("boxed", options)


def ours_verdicts(cases: list[dict[str, Any]], parser, timeout: float = TIMEOUT) -> list[tuple[bool, str | None]]:
    """(verdict, extracted answer) per case, with our grader: is_equivalent for an answer, grade_lines (the
    function behind `harness grade`) for a completion."""
    from harness.answer_parsers.equivalence import is_equivalent
    from harness.answer_parsers.grade_file import grade_lines

    verdicts: list[tuple[bool, str | None]] = [(False, None)] * len(cases)
    for index, case in enumerate(cases):
        if case["kind"] == "answer":
            verdicts[index] = (is_equivalent(case["answer"], case["gold"], timeout=timeout), None)
    completions = [index for index, case in enumerate(cases) if case["kind"] == "completion"]
    if completions:
        lines = [json.dumps({"completion": cases[i]["answer"], "gold": cases[i]["gold"]}) for i in completions]
        out = io.StringIO()
        grade_lines(lines, parser, out)
        for index, line in zip(completions, out.getvalue().splitlines(), strict=True):
            graded = json.loads(line)
            verdicts[index] = (graded["correct"], graded["answer"])
    return verdicts


def _as_text(value: Any) -> str | None:
    from harness.answer_parsers.equivalence import as_text

    return as_text(value)


def _wrapped(text: str) -> str:
    return text if _DELIMITED.search(text) else f"${text}$"


def math_verify_verdict(case: dict[str, Any], timeout: float = TIMEOUT) -> bool:
    """math-verify's own verdict: verify(parse(gold), parse(answer)), every call time-bounded."""
    from math_verify import parse, verify

    seconds = max(1, round(timeout))  # math-verify's timeouts are whole seconds (signal.alarm)
    answer, gold = _as_text(case["answer"]), _as_text(case["gold"])
    if answer is None or gold is None or not answer.strip() or not gold.strip():
        return False
    try:
        gold_parsed = parse(_wrapped(gold), parsing_timeout=seconds)
        answer_parsed = parse(answer if case["kind"] == "completion" else _wrapped(answer), parsing_timeout=seconds)
        return bool(verify(gold_parsed, answer_parsed, timeout_seconds=seconds))
    except Exception:  # math-verify raises nothing by default; a stray error is "not equal", as for ours
        return False


def score(suites: dict[str, list[dict[str, Any]]], timeout: float = TIMEOUT) -> dict[str, SuiteScore]:
    """Per suite: cases, how many verdicts of ours and of math-verify agree with the peer's, every result."""
    parser = make_parser(timeout)
    scores = {}
    try:
        for suite, cases in suites.items():
            result = SuiteScore(cases=len(cases))
            for case, (ours, extracted) in zip(cases, ours_verdicts(cases, parser, timeout), strict=True):
                row = CaseResult(case, ours, math_verify_verdict(case, timeout), extracted)
                result.ours_agree += row.ours_agrees
                result.math_verify_agree += row.math_verify_agrees
                result.results.append(row)
            scores[suite] = result
    finally:
        parser.close()  # as `harness grade` does; the next comparison starts a new worker
    return scores


def format_table(scores: dict[str, SuiteScore]) -> str:
    def percent(part: int, whole: int) -> str:
        return f"{100 * part / whole:.1f}% ({part})" if whole else "-"

    rows = [("suite", "cases", "ours %", "math-verify %")]
    for suite, result in scores.items():
        rows.append((suite, str(result.cases), percent(result.ours_agree, result.cases),
                     percent(result.math_verify_agree, result.cases)))
    total = sum(r.cases for r in scores.values())
    rows.append(("total", str(total), percent(sum(r.ours_agree for r in scores.values()), total),
                 percent(sum(r.math_verify_agree for r in scores.values()), total)))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> int:
    started = time.perf_counter()
    scores = score(load_suites())
    print(format_table(scores))
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
