"""Read trajectories and ego states from a built data set (``save_to_disk`` layout)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla.trajectory.types import EgoState, TrajectorySpec


@dataclass
class TrajectorySplit:
    """One split as arrays: ``trajectories`` (N, T, 3), ``egos``, ``scenarios``."""

    trajectories: np.ndarray
    egos: list[EgoState]
    scenarios: list[str]

    def __len__(self) -> int:
        return len(self.egos)

    def subset(self, n: int | None) -> TrajectorySplit:
        if n is None or n >= len(self):
            return self
        return TrajectorySplit(self.trajectories[:n], self.egos[:n], self.scenarios[:n])


def read_spec(data_dir: str | Path) -> TrajectorySpec:
    """The sampling spec from ``DIR/vla_data.json`` (``future_hz``, ``horizon_s``)."""
    path = Path(data_dir) / "vla_data.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: a built data set has a vla_data.json")
    meta = json.loads(path.read_text())
    try:
        return TrajectorySpec(hz=float(meta["future_hz"]), horizon_s=float(meta["horizon_s"]))
    except KeyError as err:
        raise ValueError(f"{path} lacks {err.args[0]!r}") from err


def split_from_dataset(ds, spec: TrajectorySpec) -> TrajectorySplit:
    """Convert a ``datasets.Dataset`` with the contract's columns into arrays."""
    missing = {"future", "ego_speed"} - set(ds.column_names)
    if missing:
        raise ValueError(f"the data set lacks the columns {sorted(missing)}")
    wanted = ["future", "ego_speed", "ego_accel", "ego_yaw_rate", "scenario", "decision_lon",
              "decision_lat"]
    ds = ds.select_columns([c for c in wanted if c in ds.column_names])  # skip the images
    trajs = np.asarray(ds["future"], dtype=np.float64)
    if trajs.ndim != 3 or trajs.shape[1:] != (spec.num_points, 3):
        raise ValueError(f"'future' must be (N, {spec.num_points}, 3), got {trajs.shape}")
    n = len(trajs)
    accel = ds["ego_accel"] if "ego_accel" in ds.column_names else [0.0] * n
    yaw_rate = ds["ego_yaw_rate"] if "ego_yaw_rate" in ds.column_names else [0.0] * n
    scen = ds["scenario"] if "scenario" in ds.column_names else ["unknown"] * n
    lon = ds["decision_lon"] if "decision_lon" in ds.column_names else [None] * n
    lat = ds["decision_lat"] if "decision_lat" in ds.column_names else [None] * n
    egos = [EgoState(speed=max(0.0, float(v)), accel=float(a), yaw_rate=float(w),
                     intent_lon=i or None, intent_lat=j or None)
            for v, a, w, i, j in zip(ds["ego_speed"], accel, yaw_rate, lon, lat, strict=True)]
    return TrajectorySplit(trajs, egos, [str(s) for s in scen])


def load_splits(data_dir: str | Path, splits: tuple[str, ...] = ("train", "test")
                ) -> tuple[TrajectorySpec, dict[str, TrajectorySplit]]:
    """Load the named splits of a built data set."""
    from datasets import load_from_disk

    spec = read_spec(data_dir)
    dd = load_from_disk(str(data_dir))
    out = {}
    for name in splits:
        if name not in dd:
            raise ValueError(f"{data_dir} has no split {name!r} (has {sorted(dd)})")
        out[name] = split_from_dataset(dd[name], spec)
    return spec, out
