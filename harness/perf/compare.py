"""Bench figures: save them, load a baseline, and decide which ones regressed beyond a threshold."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from harness.errors import ConfigError, DataError
from harness.perf.host import cpu_info, describe, signature

FORMAT_VERSION = 2  # 2: figures carry a gate, the file records its CPU

# How a figure is judged against a baseline (docs/performance.md, "What CI gates on"):
#   portable  both sides of the ratio run the same kernels, so it means the same on every CPU: percent threshold
#   same-cpu  the two sides run different kernels or precisions (fp32 vs bf16, vLLM's vs torch's), so a host
#             with other ISA features moves it with no code change: gated only against a same-CPU baseline
#   tolerance an accuracy at a fixed seed: judged only by its absolute tolerance, and only against a same-CPU
#             baseline: a run repeats exactly on one CPU, but another CPU's numerics change its samples (an
#             Intel host read 6 answers of 64 where the AMD baseline read 13, from the same code)
#   report    a physical-limit figure (share of this CPU's matmul peak) or one that moves with the host's IPC
#             cost (the grader against math-verify): printed, never gated
Gate = Literal["portable", "same-cpu", "tolerance", "report"]


@dataclass(frozen=True)
class Figure:
    """One benchmark figure: a ratio ("higher" is better) or a share of time ("lower" is better)."""

    name: str
    value: float
    better: Literal["higher", "lower"]
    goal: float | None  # None: no goal (accuracy figures are tracked for regressions only)
    meaning: str
    tolerance: float = 0.0  # a worsening this small (absolute) never counts, e.g. one answer of 64 graded
    gate: Gate = "portable"

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
    verdict: str = "ok"


@dataclass(frozen=True)
class Baseline:
    """A saved bench file: its mode, figures and the CPU it was measured on (None: a version-1 file)."""

    mode: str
    figures: list[Figure]
    cpu: dict | None = field(default=None)


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
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu": cpu_info()},
            "figures": {f.name: asdict(f) for f in figures}, "raw": raw, "scaling": curves or {}}


def save(path: Path, figures: list[Figure], mode: str, raw: dict[str, float], curves: dict | None = None) -> None:
    """Write atomically: a baseline is never left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(to_json(figures, mode, raw, curves), indent=2) + "\n")
    partial.replace(path)


def load(path: Path) -> Baseline:
    """A saved bench file (DataError, one line, if it is not one). Version-1 files have no gates: their
    figures take the gate today's suite gives the same name (see suite.GATES), else "portable"."""
    from harness.perf.suite import GATES

    try:
        data = json.loads(Path(path).read_text())
        figures = [Figure(**{k: entry[k] for k in ("name", "value", "better", "goal", "meaning")},
                          tolerance=float(entry.get("tolerance", 0.0)),
                          gate=entry.get("gate", GATES.get(entry["name"], "portable")))
                   for entry in data["figures"].values()]
        return Baseline(str(data["mode"]), figures, data.get("machine", {}).get("cpu"))
    except FileNotFoundError:
        raise DataError(f"--compare {path}: no such file; save one with `harness bench --save {path}`") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(f"--compare {path}: not a bench file ({type(error).__name__}: {error}); "
                        "re-save it with `harness bench --save`") from None


def regressed(figure: Figure, baseline: float, threshold: float) -> bool:
    """Higher-better: below baseline * (1 - t). Lower-better: above baseline * (1 + t) AND above its goal
    (a share that still meets its goal is not a regression: tiny shares jump by large factors on noise).
    Either way the figure must also be worse by more than its absolute `tolerance`. A "tolerance" figure
    (an accuracy) is judged by its tolerance alone: a percentage of 1 label in 12 means nothing."""
    if figure.gate == "tolerance":
        worse_by = baseline - figure.value if figure.better == "higher" else figure.value - baseline
        return worse_by > figure.tolerance + 1e-12
    if figure.better == "higher":
        beyond = figure.value < baseline * (1 - threshold)
        worse_by = baseline - figure.value
    else:
        beyond = figure.value > baseline * (1 + threshold) and (figure.goal is None or figure.value >= figure.goal)
        worse_by = figure.value - baseline
    return beyond and worse_by > figure.tolerance + 1e-12  # float noise at exactly one answer


def same_cpu(baseline_cpu: dict | None, host_cpu: dict | None = None) -> bool:
    """True when the baseline was measured on a CPU of this host's vendor, family, model and ISA features."""
    return signature(baseline_cpu) is not None and signature(baseline_cpu) == signature(host_cpu or cpu_info())


def judge(figure: Figure, baseline: Figure, threshold: float, on_same_cpu: bool) -> tuple[bool, str]:
    """(regressed, verdict) for one figure present in both runs."""
    if figure.gate == "report":
        return False, "report only (not gated)"
    if figure.gate == "same-cpu" and not on_same_cpu:
        return False, "not gated (baseline from another CPU)"
    if figure.gate == "tolerance" and not on_same_cpu:
        return False, "not gated (baseline from another CPU: its samples differ)"
    # The tolerance is the baseline's: it was computed from the baseline's own counts and value.
    judged = Figure(figure.name, figure.value, figure.better, figure.goal, figure.meaning,
                    max(baseline.tolerance, figure.tolerance), figure.gate)
    bad = regressed(judged, baseline.value, threshold)
    if figure.gate == "tolerance":
        return bad, ("REGRESSED" if bad else "ok") + f" (tolerance {judged.tolerance:.3g})"
    return bad, "REGRESSED" if bad else "ok"


def compare(current: list[Figure], baseline: list[Figure], threshold: float,
            on_same_cpu: bool = True) -> list[Comparison]:
    """One row per figure in either list; only figures present in both can regress, and "same-cpu" and
    "tolerance" figures only when the baseline's CPU is this host's."""
    base = {f.name: f for f in baseline}
    rows = []
    for figure in current:
        old = base.pop(figure.name, None)
        if old is None:
            rows.append(Comparison(figure.name, None, figure.value, None, False, "new (not in baseline)"))
            continue
        sign = 1 if figure.better == "higher" else -1
        change = sign * (figure.value - old.value) / old.value if old.value else None
        bad, verdict = judge(figure, old, threshold, on_same_cpu)
        rows.append(Comparison(figure.name, old.value, figure.value, change, bad, verdict))
    rows.extend(Comparison(name, old.value, None, None, False, "missing now") for name, old in base.items())
    return rows


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def figures_table(figures: list[Figure], cpu: dict | None = None) -> str:
    lines = [f"host: {describe(cpu or cpu_info())}",
             f"{'figure':<34} {'value':>10} {'goal':>10}  met  {'gate':<9}  meaning"]
    for f in figures:
        goal = "-" if f.goal is None else (">= " if f.better == "higher" else "< ") + f"{f.goal:g}"
        met = {True: "yes", False: "NO", None: "-"}[f.meets_goal]
        lines.append(f"{f.name:<34} {f.value:>10.4g} {goal:>10}  {met:<3}  {f.gate:<9}  {f.meaning}")
    return "\n".join(lines)


def comparison_table(rows: list[Comparison], threshold: float, baseline_cpu: dict | None = None) -> str:
    where = "" if same_cpu(baseline_cpu) else "  (another CPU: its same-cpu and accuracy figures are not gated)"
    lines = [f"baseline host: {describe(baseline_cpu)}{where}"]
    lines.append(f"{'figure':<34} {'baseline':>10} {'now':>10} {'change':>9}  verdict (max regression {threshold:.0%})")
    for row in rows:
        change = "-" if row.change is None else f"{row.change:+.1%}"
        numbers = f"{_number(row.baseline):>10} {_number(row.current):>10} {change:>9}"
        lines.append(f"{row.name:<34} {numbers}  {row.verdict}")
    return "\n".join(lines)
