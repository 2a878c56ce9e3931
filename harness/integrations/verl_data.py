"""A harness benchmark as the parquet file verl's RL dataset reads (`data.train_files` / `data.val_files`).

    python -m harness.integrations.verl_data aime24 data/verl        # -> data/verl/aime24.parquet

One row per problem, in the layout of the official TTRL data (verl/data/preprocess.py): `prompt` is one user
turn (the problem, then the benchmark's instruction, as the harness's own prompts are), verl applies the model's
chat template; `reward_model.ground_truth` is the gold as published, used for validation accuracy and
diagnostics only (the training reward is the vote); `data_source` names the benchmark in verl's metrics.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.plugins import get_plugins
from harness.types import Problem


def verl_rows(problems: list[Problem], instruction: str, data_source: str) -> list[dict[str, Any]]:
    """verl's RL-dataset rows, one per problem, in order."""
    return [
        {
            "data_source": data_source,
            "prompt": [{"role": "user", "content": f"{p.prompt}\n{instruction}".strip() if instruction else p.prompt}],
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": p.answer},
            "extra_info": {"index": index, "id": p.id},
        }
        for index, p in enumerate(problems)
    ]


def write_benchmark(name: str, folder: str | Path, options: dict[str, Any] | None = None) -> Path:
    """Write benchmark `name` (a harness benchmark: aime24, amc, math500, ...) to folder/<name>.parquet."""
    import pandas as pd  # a dependency of verl's dataset code already

    benchmarks = get_plugins()["benchmark"]
    problems = benchmarks.create(name, options or {}).load()
    path = Path(folder) / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(verl_rows(problems, benchmarks.get(name).instruction, name)).to_parquet(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", help="a harness benchmark name: aime24, amc, math500")
    parser.add_argument("folder", help="where <benchmark>.parquet is written")
    parser.add_argument("--path", help="the benchmark's data file or folder (default: $HARNESS_DATA_DIR, else ./data)")
    args = parser.parse_args(argv)
    print(write_benchmark(args.benchmark, args.folder, {"path": args.path} if args.path else None))


if __name__ == "__main__":
    main()
