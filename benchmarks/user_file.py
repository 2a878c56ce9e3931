"""`file`: the user's own problems, from a JSON array or a JSON-lines file, with configurable field names.

    harness run --benchmark file --benchmark-opt path=my.jsonl --benchmark-opt prompt_field=question

Each record needs a prompt and a gold answer (kept as written: the gold is used only for the diagnostics
and the evaluation, never shown to a label-free strategy); a record without an id gets `<file stem>-<n>`.
The file is checked like the built-in loaders': a bad record is a one-line error naming the file, the line
(or array index) and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.benchmarks.files import Fields, json_array_records, json_lines_records, problems_from, sniff_format
from harness.errors import DataError
from harness.interfaces import Benchmark
from harness.types import Problem


class UserFileOptions(BaseModel):
    """Where the problems are and which fields hold what."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The problem file: a JSON array of objects, or one JSON object a line.")
    prompt_field: str = Field("prompt", min_length=1, description="Field holding the problem text.")
    answer_field: str = Field("answer", min_length=1, description="Field holding the gold answer.")
    id_field: str = Field("id", min_length=1, description="Field holding a unique id (absent: <stem>-<n>).")
    format: Literal["auto", "json", "jsonl"] = Field(
        "auto", description="json (one array), jsonl (one object a line), or auto (from the first character)."
    )
    source: str | None = Field(None, description="Source name recorded with each problem (default: file stem).")


class UserFile(Benchmark):
    """Problems from a file of the user's own."""

    name = "file"
    Options = UserFileOptions

    def load(self) -> list[Problem]:
        options = self.options
        path = Path(options.path)
        layout = options.format
        if layout == "auto":
            layout = {"ttrl": "json", "qwen": "jsonl"}[sniff_format(path)]
        records = json_array_records(path) if layout == "json" else json_lines_records(path)
        fields = Fields(prompt=(options.prompt_field,), answer=(options.answer_field,), id=(options.id_field,))
        problems = problems_from(records, path, fields, options.source, numbered_ids=True)
        if not problems:
            raise DataError(f"benchmark 'file': {path} holds no problems; point path= at another file")
        return problems
