"""Vote counting shared by the vote-based strategies."""

from __future__ import annotations

from collections.abc import Sequence


def tally(clusters: Sequence[int | None], weights: Sequence[float] | None = None) -> dict[int, float]:
    """Total weight per answer cluster; samples without an answer (None) never vote."""
    totals: dict[int, float] = {}
    for index, cluster in enumerate(clusters):
        if cluster is not None:
            totals[cluster] = totals.get(cluster, 0.0) + (1.0 if weights is None else weights[index])
    return totals


def winner(totals: dict[int, float]) -> int | None:
    """The heaviest cluster; ties go to the answer that appeared first (lowest cluster index)."""
    if not totals:
        return None
    return min(totals, key=lambda cluster: (-totals[cluster], cluster))


def rewards_for(clusters: Sequence[int | None], label_cluster: int) -> list[float]:
    """1.0 for samples whose answer is equivalent to the label, else 0.0 (no answer gets 0.0)."""
    return [1.0 if cluster == label_cluster else 0.0 for cluster in clusters]
