"""Bench figures: save them, load a baseline, and decide which ones regressed beyond a threshold."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from harness.errors import ConfigError, DataError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Figure:
    """One benchmark figure: a ratio ("higher" is better) or a share of time ("lower" is better)."""

    name: str
    value: float
    better: Literal["higher", "lower"]
    goal: float | None  # None: no goal (accuracy figures are tracked for regressions only)
    meaning: str
    tolerance: float = 0.0  # a worsening this small (absolute) never counts, e.g. one answer of 64 graded

    @property
    def meets_goal(self) -> bool | None:
        if self.goal is None:
            return None
        return self.value >= self.goal if self.better == "higher" else self.value < self.goal


@dataclass(frozen=True)
class Comparison:
    name: str
    baseline: float | None
    current: float | None
    change: float | None  # relative change, signed so that negative is worse
    regressed: bool


def parse_threshold(text: str) -> float:
    """'10%' or '10' -> 0.10; anything else is a ConfigError."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise ConfigError(f"--max-regression {text!r}: give a percentage such as 10%") from None
    if not 0 <= value < 100:
        raise ConfigError(f"--max-regression {text!r}: give a percentage in [0, 100), such as 10%")
    return value / 100


def to_json(figures: list[Figure], mode: str, raw: dict[str, float], curves: dict | None = None) -> dict:
    return {"version": FORMAT_VERSION, "mode": mode,
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
            "figures": {f.name: asdict(f) for f in figures}, "raw": raw, "scaling": curves or {}}


def save(path: Path, figures: list[Figure], mode: str, raw: dict[str, float], curves: dict | None = None) -> None:
    """Write atomically: a baseline is never left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(to_json(figures, mode, raw, curves), indent=2) + "\n")
    partial.replace(path)


def load(path: Path) -> tuple[str, list[Figure]]:
    """The mode and figures of a saved bench file (DataError, one line, if it is not one)."""
    try:
        data = json.loads(Path(path).read_text())
        figures = [Figure(**{k: entry[k] for k in ("name", "value", "better", "goal", "meaning")},
                          tolerance=float(entry.get("tolerance", 0.0)))
                   for entry in data["figures"].values()]
        return str(data["mode"]), figures
    except FileNotFoundError:
        raise DataError(f"--compare {path}: no such file; save one with `harness bench --save {path}`") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(f"--compare {path}: not a bench file ({type(error).__name__}: {error}); "
                        "re-save it with `harness bench --save`") from None


def regressed(figure: Figure, baseline: float, threshold: float) -> bool:
    """Higher-better: below baseline * (1 - t). Lower-better: above baseline * (1 + t) AND above its goal
    (a share that still meets its goal is not a regression: tiny shares jump by large factors on noise).
    Either way the figure must also be worse by more than its absolute `tolerance`."""
    if figure.better == "higher":
        beyond = figure.value < baseline * (1 - threshold)
        worse_by = baseline - figure.value
    else:
        beyond = figure.value > baseline * (1 + threshold) and (figure.goal is None or figure.value >= figure.goal)
        worse_by = figure.value - baseline
    return beyond and worse_by > figure.tolerance + 1e-12  # float noise at exactly one answer


def compare(current: list[Figure], baseline: list[Figure], threshold: float) -> list[Comparison]:
    """One row per figure in either list; only figures present in both can regress."""
    base = {f.name: f for f in baseline}
    rows = []
    for figure in current:
        old = base.pop(figure.name, None)
        if old is None:
            rows.append(Comparison(figure.name, None, figure.value, None, False))
            continue
        sign = 1 if figure.better == "higher" else -1
        change = sign * (figure.value - old.value) / old.value if old.value else None
        rows.append(Comparison(figure.name, old.value, figure.value, change,
                               regressed(figure, old.value, threshold)))
    rows.extend(Comparison(name, old.value, None, None, False) for name, old in base.items())
    return rows


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def figures_table(figures: list[Figure]) -> str:
    lines = [f"{'figure':<34} {'value':>10} {'goal':>10}  met  meaning"]
    for f in figures:
        goal = "-" if f.goal is None else (">= " if f.better == "higher" else "< ") + f"{f.goal:g}"
        met = {True: "yes", False: "NO", None: "-"}[f.meets_goal]
        lines.append(f"{f.name:<34} {f.value:>10.4g} {goal:>10}  {met:<3}  {f.meaning}")
    return "\n".join(lines)


def comparison_table(rows: list[Comparison], threshold: float) -> str:
    lines = [f"{'figure':<34} {'baseline':>10} {'now':>10} {'change':>9}  verdict (max regression {threshold:.0%})"]
    for row in rows:
        change = "-" if row.change is None else f"{row.change:+.1%}"
        if row.baseline is None:
            verdict = "new (not in baseline)"
        elif row.current is None:
            verdict = "missing now"
        else:
            verdict = "REGRESSED" if row.regressed else "ok"
        lines.append(f"{row.name:<34} {_number(row.baseline):>10} {_number(row.current):>10} {change:>9}  {verdict}")
    return "\n".join(lines)
