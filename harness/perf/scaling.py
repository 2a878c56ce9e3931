"""Is one iteration's time linear in N (or in the problem count)? A least-squares line, its R^2, and the
log-log slope between the ends, turned into a table and a one-line verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass

LINEAR_R2 = 0.98  # a straight line explains at least this share of the variance


@dataclass(frozen=True)
class Fit:
    intercept: float  # seconds at x = 0: the fixed cost of an iteration
    slope: float  # seconds per unit of x (per sample per problem, or per problem)
    r2: float
    loglog: float  # d log(seconds) / d log(x) between the first and last point: 1 = proportional

    @property
    def verdict(self) -> str:
        if self.r2 >= LINEAR_R2:
            return f"linear (a fixed {self.intercept:.2f} s plus {self.slope:.3f} s per unit)"
        return f"not linear ({'sublinear' if self.loglog < 1 else 'superlinear'}, log-log slope {self.loglog:.2f})"


def fit_line(xs: list[float], ys: list[float]) -> Fit:
    """Least squares y = a + b x. Needs two distinct x values; R^2 is 1 when every y is equal."""
    if len(xs) != len(ys) or len(set(xs)) < 2:
        raise ValueError("fit_line needs at least two distinct x values and one y per x")
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 - residual / total if total > 0 else 1.0
    loglog = math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0]) if ys[0] > 0 and ys[-1] > 0 else float("nan")
    return Fit(intercept, slope, r2, loglog)


def curve_table(name: str, points: list[dict[str, float]]) -> tuple[str, Fit]:
    """The curve as text (x, seconds, its sample/optimize parts, sampled tokens, trained sequences) and its fit.
    Trained sequences explain bumps: groups whose samples all got the same reward carry no gradient and are
    skipped, so the optimize time follows how many groups had signal, not N alone."""
    fit = fit_line([p["x"] for p in points], [p["seconds"] for p in points])
    lines = [f"{name:>9} {'seconds':>8} {'sample':>8} {'optimize':>9} {'tokens':>7} {'trained':>8} {'s/unit':>7}"]
    for p in points:
        lines.append(f"{p['x']:>9g} {p['seconds']:>8.2f} {p['sample']:>8.2f} {p['optimize']:>9.2f} "
                     f"{p['tokens']:>7.0f} {p.get('trained', 0.0):>8.0f} {p['seconds'] / p['x']:>7.3f}")
    lines.append(f"fit: seconds = {fit.intercept:.2f} + {fit.slope:.3f} x {name}, R^2 {fit.r2:.3f}, "
                 f"log-log slope {fit.loglog:.2f}: {fit.verdict}")
    return "\n".join(lines), fit
