"""Random evaluation subsets of a split, stratified by scenario.

The first N rows of a split are a few episodes of a few scenarios; a subset drawn here holds
every scenario in proportion to its rows instead (each scenario at least one row while N
allows). Rows are picked one at a time, each from the scenario furthest below its share, so a
larger N only adds rows to a smaller one's draw (with the same seed): a longer evaluation
or an interrupted rollout extends the shorter one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_indices(scenarios: Sequence[str], n: int | None, seed: int = 0) -> list[int]:
    """Row indices (ascending) of a random subset of ``n`` rows, stratified by scenario.

    ``scenarios`` holds each row's scenario. Each scenario gets a share of the ``n`` rows
    proportional to its rows, at least one while ``n`` allows (the largest scenarios first);
    within a scenario the rows are a seeded random draw. ``n`` None or at least the number of
    rows gives every row. The same scenarios, ``n`` and seed give the same indices.
    """
    total = len(scenarios)
    if n is None or n >= total:
        return list(range(total))
    if n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n}")
    rows: dict[str, list[int]] = {}
    for i, scenario in enumerate(scenarios):
        rows.setdefault(scenario, []).append(i)
    names = sorted(rows)
    rng = np.random.default_rng([seed, 104729])
    tie = rng.permutation(len(names))  # a seeded order among scenarios of equal claim
    size = np.array([len(rows[s]) for s in names], np.int64)
    perm = [np.asarray(rows[s])[rng.permutation(len(rows[s]))] for s in names]
    taken = np.zeros(len(names), np.int64)
    # one row per scenario first, the largest scenarios first
    first = sorted(range(len(names)), key=lambda j: (-size[j], tie[j]))[:n]
    taken[first] = 1
    for picked in range(len(first), n):
        # the scenario furthest below its share of picked + 1 rows (in units of 1 / total)
        deficit = (picked + 1) * size - taken * total
        deficit[taken >= size] = np.iinfo(np.int64).min
        best = max(range(len(names)), key=lambda j: (deficit[j], -tie[j]))
        taken[best] += 1
    return sorted(int(i) for j in range(len(names)) for i in perm[j][:taken[j]])


def stratified_subset(split, n: int | None, seed: int = 0, *, return_indices: bool = False):
    """A ``datasets.Dataset`` of ``n`` rows of ``split`` drawn at random, stratified by its
    ``scenario`` column (see :func:`stratified_indices`), in the split's order; with
    ``return_indices``, ``(subset, indices)`` so that callers can log which rows they scored.
    ``n`` None or at least ``len(split)``: the whole split."""
    if n is None or n >= len(split):
        indices = list(range(len(split)))
        subset = split
    else:
        indices = stratified_indices(list(split["scenario"]), n, seed)
        subset = split.select(indices)
    return (subset, indices) if return_indices else subset


def subset_record(indices: Sequence[int], seed: int, split_rows: int) -> dict:
    """What to log about a subset: how it was drawn and which rows of the split it holds
    (no list when it is the whole split)."""
    if len(indices) == split_rows:
        return {"method": "whole split", "of_rows": split_rows}
    return {"method": "random, stratified by scenario", "seed": seed, "of_rows": split_rows,
            "indices": [int(i) for i in indices]}


def subset_name(sample: dict) -> str:
    """The evaluation subset of a sample: ``events`` or ``free`` for simulator samples
    (:func:`vla.sim.recipes.subset_of`), ``logs`` for converted driving logs."""
    from vla.metrics import is_log
    from vla.sim.recipes import subset_of

    return "logs" if is_log(sample) else subset_of(sample["scenario"])
