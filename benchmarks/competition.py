"""The paper's benchmarks read from local files: AIME 2024, AMC, MATH-500 (and its level subsets)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.benchmarks.files import read_problems
from harness.benchmarks.hub import load_hf_problems
from harness.benchmarks.locate import locate
from harness.errors import ConfigError, DataError
from harness.interfaces import Benchmark
from harness.types import Problem


class FileOptions(BaseModel):
    """Where the problems come from."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="A data file or folder (default: $HARNESS_DATA_DIR, else ./data).")
    format: Literal["ttrl", "qwen", "auto"] = Field(
        "auto", description="File format: ttrl (JSON array), qwen (JSON lines), or auto (TTRL file first)."
    )
    hf_dataset: str | None = Field(
        None, description="A Hugging Face datasets id to load instead of local files (needs the network)."
    )
    hf_split: str | None = Field(None, description="Split of hf_dataset (default: test, else the only one).")


class FileBenchmark(Benchmark):
    """A benchmark whose problems live in one TTRL-format or Qwen-format file."""

    ttrl_file: ClassVar[str | None] = None  # e.g. AIME-TTT.json
    qwen_name: ClassVar[str | None] = None  # e.g. aime24 (-> aime24.jsonl)
    Options: ClassVar[type[BaseModel]] = FileOptions

    def files(self) -> tuple[str | None, str | None]:
        """(TTRL file name, Qwen set name) to look for in a data folder."""
        return self.ttrl_file, self.qwen_name

    def load(self) -> list[Problem]:
        return self.read()[1]

    def read(self) -> tuple[str, list[Problem]]:
        """(where the problems came from: a file path or hf_dataset id, the problems)."""
        options = self.options
        if options.hf_dataset:
            origin = f"hf_dataset {options.hf_dataset}"
            problems = load_hf_problems(options.hf_dataset, options.hf_split, source=self.name)
        else:
            ttrl_file, qwen_name = self.files()
            found = locate(self.name, options.path, options.format, ttrl_file, qwen_name)
            origin, problems = str(found.path), read_problems(found.path, found.format, source=self.name)
        if not problems:
            raise DataError(f"benchmark '{self.name}': {origin} holds no problems; point path= at another file")
        return origin, problems


class AIME24(FileBenchmark):
    """AIME 2024: 30 problems with integer answers 0-999 (golds zero-padded as published: "025")."""

    name = "aime24"
    ttrl_file = "AIME-TTT.json"
    qwen_name = "aime24"


class AMC(FileBenchmark):
    """AMC: TTRL's 83 problems (golds like "142.0"); format qwen gives Qwen's 40 AMC 2023 problems."""

    name = "amc"
    ttrl_file = "AMC-TTT.json"
    qwen_name = "amc23"


class Math500Options(FileOptions):
    """MATH-500 options: the file options plus a difficulty level."""

    level: int | None = Field(
        None, ge=1, le=5, description="Only this difficulty level 1-5 (TTRL's MATH-L{level}-TTT.json)."
    )


class Math500(FileBenchmark):
    """MATH-500: 500 competition problems with LaTeX golds; `level` picks one of 43/90/105/128/134."""

    name = "math500"
    ttrl_file = "MATH-TTT.json"
    qwen_name = "math500"
    Options = Math500Options

    def files(self) -> tuple[str | None, str | None]:
        if self.options.level is None:
            return self.ttrl_file, self.qwen_name
        # TTRL ships one file per level; Qwen's math500 rows carry a `level` field filtered below.
        return f"MATH-L{self.options.level}-TTT.json", self.qwen_name

    def load(self) -> list[Problem]:
        level = self.options.level
        origin, problems = self.read()
        if level is None:
            return problems
        if all("level" in p.metadata for p in problems):
            return [p for p in problems if _level(p.metadata["level"]) == level]
        level_file = f"MATH-L{level}-TTT.json"
        if level_file not in (Path(origin).name, f"{Path(origin).parent.name}.json"):
            raise ConfigError(
                f"math500 level={level}: {origin} has no `level` field per problem; point path= at a folder "
                f"holding {level_file} (or at that file), or drop the level option"
            )
        # TTRL's level file: every problem is of that level by construction.
        return [p.model_copy(update={"metadata": {**p.metadata, "level": level}}) for p in problems]


def _level(value: object) -> int | None:
    """A level as published: 3, "3" or "Level 3"."""
    text = str(value).strip().removeprefix("Level").strip()
    return int(text) if text.isdigit() else None
