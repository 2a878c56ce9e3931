"""`harness grade FILE.jsonl`: extract and grade each {"completion", "gold"} line, one result line each."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, TextIO

from harness.answer_parsers.equivalence import as_text
from harness.errors import DataError
from harness.interfaces import AnswerParser

REQUIRED = ("completion", "gold")


def grade_lines(lines: Iterable[str], parser: AnswerParser, out: TextIO) -> dict[str, Any]:
    """Write each input object plus "answer" (str or null) and "correct" (bool) to `out`, one per line.

    Blank lines are skipped. A line that is not a JSON object, lacks a field or has a field of the wrong
    type raises DataError naming the line number. Returns {count, correct, accuracy, seconds}.
    """
    started = time.perf_counter()
    count = correct = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _parse_line(line, number)
        answer = parser.extract(record["completion"])
        is_correct = answer is not None and parser.equivalent(answer, as_text(record["gold"]))
        out.write(json.dumps({**record, "answer": answer, "correct": is_correct}) + "\n")  # ASCII: lone surrogates too
        count += 1
        correct += is_correct
    return {
        "count": count,
        "correct": correct,
        "accuracy": correct / count if count else 0.0,
        "seconds": time.perf_counter() - started,
    }


def _parse_line(line: str, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except RecursionError:
        raise DataError(f"line {number}: JSON nested too deeply; write one flat object per line") from None
    except json.JSONDecodeError as error:
        raise DataError(
            f"line {number}: bad JSON ({error.msg} at column {error.colno}); "
            'write one object per line like {"completion": "...", "gold": "..."}'
        ) from None
    if not isinstance(record, dict):
        kind = type(record).__name__
        raise DataError(f"line {number}: expected a JSON object with 'completion' and 'gold', got {kind}")
    for name in REQUIRED:
        if name not in record:
            raise DataError(f"line {number}: missing field '{name}'; each line needs 'completion' and 'gold'")
    if not isinstance(record["completion"], str):
        raise DataError(f"line {number}: field 'completion' must be a string")
    gold = record["gold"]
    if isinstance(gold, bool) or not isinstance(gold, str | int | float):
        raise DataError(f"line {number}: field 'gold' must be a string or a number")
    return record
