"""The synthetic trajectories (:mod:`vla.trajectory.synthetic`) as a built data set's stand-in.

Writes the columns the codec bench reads (``future``, ``ego_speed``, ``ego_accel``,
``ego_yaw_rate``, ``scenario``) in the ``save_to_disk`` layout with its ``vla_data.json``, so
that ``vla codec bench --synthetic N`` runs without a simulator data set. It has no images,
labels or history: only what a codec sees.
"""

from __future__ import annotations

import json
from pathlib import Path

from vla.trajectory.synthetic import generate
from vla.trajectory.types import TrajectorySpec


def make_dataset(n: int, seed: int = 0, spec: TrajectorySpec | None = None,
                 fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)):
    """A ``datasets.DatasetDict`` (train / validation / test) with the data set's columns."""
    from datasets import Dataset, DatasetDict

    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1: {fractions}")
    trajs, egos, kinds = generate(n, seed=seed, spec=spec)
    n_train = int(round(n * fractions[0]))
    n_val = int(round(n * fractions[1]))
    bounds = {"train": (0, n_train), "validation": (n_train, n_train + n_val),
              "test": (n_train + n_val, n)}
    splits = {}
    for split, (lo, hi) in bounds.items():
        splits[split] = Dataset.from_dict({
            "future": [trajs[i].tolist() for i in range(lo, hi)],
            "ego_speed": [egos[i].speed for i in range(lo, hi)],
            "ego_accel": [egos[i].accel for i in range(lo, hi)],
            "ego_yaw_rate": [egos[i].yaw_rate for i in range(lo, hi)],
            "scenario": kinds[lo:hi],
        })
    return DatasetDict(splits)


def save_synthetic_dataset(out_dir: str | Path, n: int, seed: int = 0,
                           spec: TrajectorySpec | None = None) -> Path:
    """Build and ``save_to_disk`` a synthetic data set, with its ``vla_data.json``."""
    spec = spec or TrajectorySpec()
    out = Path(out_dir)
    make_dataset(n, seed=seed, spec=spec).save_to_disk(str(out))
    meta = {"future_hz": spec.hz, "horizon_s": spec.horizon_s, "source": "synthetic",
            "generator": "vla.trajectory.synthetic", "n": n, "seed": seed}
    (out / "vla_data.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out
