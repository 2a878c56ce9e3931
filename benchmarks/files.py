"""Readers for the two published file formats of the TTRL benchmarks.

- TTRL (`AIME-TTT.json` etc.): a JSON array of {prompt, answer, source, id}; the MATH level files have
  {prompt, answer, solution, unique_id}.
- Qwen2.5-Math (`aime24.jsonl` etc.): one JSON object a line with id, problem, answer, solution/url/question.

Files are untrusted input: every problem is checked field by field, and a bad one raises a one-line
DataError naming the file, the line (jsonl) or array index (json) and the field. Gold answers are kept
exactly as published ("025", "142.0"): a number written in the file keeps its text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from harness.errors import DataError
from harness.types import Problem

Format = Literal["ttrl", "qwen", "hf"]

# Which record keys hold the prompt and the id, in order of preference, per format.
PROMPT_KEYS: dict[str, tuple[str, ...]] = {
    "ttrl": ("prompt",),
    "qwen": ("problem", "question"),
    "hf": ("problem", "prompt", "question"),  # Hugging Face datasets use all three names
}
ID_KEYS = ("id", "unique_id")
# Fields that may repeat the prompt: not copied into metadata when they do.
DUPLICATES = {"question", "problem", "prompt"}


class NumberText(str):
    """A JSON number kept as the exact text the file wrote (so 142.0 stays "142.0", not 142)."""


def _number_text(text: str) -> NumberText:
    return NumberText(text)


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=_number_text, parse_int=_number_text)


def _type_name(value: Any) -> str:
    if isinstance(value, NumberText):
        return "number"
    return {str: "string", bool: "boolean", dict: "object", list: "array", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _pick(record: Mapping[str, Any], keys: tuple[str, ...], where: str, *, numbers: bool) -> tuple[str, str]:
    """(key, text) of the first present field of `keys`; `numbers` also accepts a JSON number."""
    for key in keys:
        if key not in record:
            continue
        value = record[key]
        if isinstance(value, str) and (numbers or not isinstance(value, NumberText)):
            return key, str(value)
        if numbers and isinstance(value, int | float) and not isinstance(value, bool):
            return key, str(value)  # records from `datasets` arrive already parsed
        wanted = "a string or number" if numbers else "a string"
        raise DataError(f"{where}: field '{key}' must be {wanted} (got {_type_name(value)} {value!r})")
    shown = "' or '".join(keys)
    raise DataError(f"{where}: field '{shown}' is missing")


def _plain(value: Any) -> Any:
    """A metadata value with kept number texts turned back into numbers."""
    if isinstance(value, NumberText):
        return float(value) if any(c in value for c in ".eE") else int(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Fields:
    """Which record keys hold the prompt, the gold answer and the id (each in order of preference)."""

    prompt: tuple[str, ...]
    answer: tuple[str, ...] = ("answer",)
    id: tuple[str, ...] = ID_KEYS


def record_to_problem(
    record: Any, where: str, *, fmt: Format | Fields, default_source: str, default_id: str | None = None
) -> Problem:
    """One file record -> a validated Problem; `where` ("FILE line 3") prefixes every error. `fmt` is a
    published format or the field names of a user's own file."""
    fields = fmt if isinstance(fmt, Fields) else Fields(PROMPT_KEYS[fmt])
    if not isinstance(record, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {_type_name(record)}")
    prompt_key, prompt = _pick(record, fields.prompt, where, numbers=False)
    answer_key, answer = _pick(record, fields.answer, where, numbers=True)
    if default_id is not None and not any(key in record for key in fields.id):
        id_key, problem_id = "", default_id
    else:
        id_key, problem_id = _pick(record, fields.id, where, numbers=True)
    source = default_source
    if "source" in record:
        _, source = _pick(record, ("source",), where, numbers=False)
    used = {prompt_key, answer_key, id_key, "source"}
    metadata = {
        key: _plain(value)
        for key, value in record.items()
        if key not in used and not (key in DUPLICATES and value == prompt)
    }
    try:
        return Problem(id=problem_id, prompt=prompt, answer=answer, source=source, metadata=metadata)
    except ValidationError as error:
        item = error.errors()[0]
        field = {"prompt": prompt_key, "id": id_key}.get(str(item["loc"][0]), str(item["loc"][0]))
        raise DataError(f"{where}: field '{field}': {item['msg']}") from None


def _check_unique(problems: Iterable[Problem], path: Path) -> None:
    seen: set[str] = set()
    for problem in problems:
        if problem.id in seen:
            raise DataError(f"{path}: problem id {problem.id!r} appears twice; ids must be unique")
        seen.add(problem.id)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not content
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; pass --benchmark-opt path=FILE_OR_FOLDER") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot be read as UTF-8 text: {error}") from None


def json_array_records(path: Path) -> list[tuple[str, Any]]:
    """(where, record) for each element of a file holding one JSON array."""
    try:
        records = _loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"{path} line {error.lineno}: invalid JSON: {error.msg} (column {error.colno})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to read; is it a problem file?") from None
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON array of problems, got {_type_name(records)}")
    return [(f"{path} array index {index}", record) for index, record in enumerate(records)]


def json_lines_records(path: Path) -> list[tuple[str, Any]]:
    """(where, record) for each non-blank line of a JSON-lines file."""
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            records.append((where, _loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: invalid JSON: {error.msg} (column {error.colno})") from None
        except RecursionError:
            raise DataError(f"{where}: JSON nested too deeply to read; write one problem object a line") from None
    return records


def problems_from(records: list[tuple[str, Any]], path: Path, fmt: Format | Fields, source: str | None,
                  numbered_ids: bool = False) -> list[Problem]:
    """Validated, id-unique problems; with `numbered_ids`, a record without an id is `<file stem>-<n>`."""
    default_source = source or path.stem
    problems = [record_to_problem(record, where, fmt=fmt, default_source=default_source,
                                  default_id=f"{path.stem}-{number}" if numbered_ids else None)
                for number, (where, record) in enumerate(records)]
    _check_unique(problems, path)
    return problems


def read_ttrl_json(path: str | Path, source: str | None = None) -> list[Problem]:
    """A TTRL-format file: a JSON array of problem objects."""
    return problems_from(json_array_records(Path(path)), Path(path), "ttrl", source)


def read_qwen_jsonl(path: str | Path, source: str | None = None) -> list[Problem]:
    """A Qwen2.5-Math-format file: one JSON object a line (blank lines are skipped)."""
    return problems_from(json_lines_records(Path(path)), Path(path), "qwen", source)


def sniff_format(path: str | Path) -> Format:
    """The format of a file: "ttrl" when it starts with a JSON array, "qwen" with an object (jsonl)."""
    head = _read_text(Path(path)).lstrip()[:1]
    if head == "[":
        return "ttrl"
    if head == "{":
        return "qwen"
    raise DataError(
        f"{path}: neither a JSON array (TTRL format) nor JSON lines (Qwen format); "
        "check the file or set --benchmark-opt format=ttrl|qwen"
    )


def read_problems(path: str | Path, fmt: str = "auto", source: str | None = None) -> list[Problem]:
    """Read one file in the given format ("ttrl", "qwen" or "auto": decided from its first character)."""
    chosen = sniff_format(path) if fmt == "auto" else fmt
    if chosen == "ttrl":
        return read_ttrl_json(path, source)
    if chosen == "qwen":
        return read_qwen_jsonl(path, source)
    raise DataError(f"unknown benchmark file format {fmt!r}; use ttrl, qwen or auto")
