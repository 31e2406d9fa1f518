"""Waypoint bins: (x, y) of every ``1 / rate_hz`` seconds, each quantised into bins.

Per waypoint and per axis the codec fits a set of bin centres on the training set, either
``uniform`` over the fitted range widened to the physical envelope of ``kinematics`` (braking at
6 m/s^2, accelerating at 4, lateral acceleration 5, at most 40 m/s), or at ``quantile`` levels
(more bins where trajectories are dense; the outermost bins sit on the envelope). With
``relative="constant_velocity"`` the quantity binned is the deviation from driving straight on
at the ego speed, ``(x - v0 t, y)``, which is much narrower than the raw positions at motorway
speed; with ``"ego"`` the raw ego-frame positions.

Decoding places the waypoints and interpolates the samples between them with a cubic spline in
time through t0 = (0, 0), whose start velocity is clamped to (v0, 0) from the ego state. The yaw
is the direction of the spline's velocity (kept constant while stopped).

Ids: ``[0, bins)`` are x bins, ``[bins, 2 * bins)`` y bins; a trajectory is x, y, x, y, ...
Simplifications: independent scalar quantisation per axis; the spline may overshoot between
sparse waypoints in sharp manoeuvres; a value outside the fitted range is clipped.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.interpolate import CubicSpline

from vla.trajectory.codecs.base import (
    CodecConfig,
    TrajectoryCodec,
    _check_choice,
    _check_positive_int,
)
from vla.trajectory.kinematics import (
    MAX_ACCEL,
    MAX_DECEL,
    MAX_LAT_ACCEL,
    MAX_SPEED,
    yaw_from_positions,
)
from vla.trajectory.types import EgoState


@dataclasses.dataclass(frozen=True)
class WaypointConfig(CodecConfig):
    rate_hz: float = 2.0
    bins: int = 256
    spacing: str = "uniform"
    relative: str = "constant_velocity"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(self, "bins")
        if self.bins < 2:
            raise ValueError(f"WaypointConfig.bins must be >= 2, got {self.bins}")
        _check_choice(self, "spacing", ("uniform", "quantile"))
        _check_choice(self, "relative", ("constant_velocity", "ego"))
        self.spec.steps_per(self.rate_hz)


class WaypointCodec(TrajectoryCodec):
    name = "waypoint"
    config_cls = WaypointConfig
    config: WaypointConfig

    def __init__(self, config: WaypointConfig | None = None) -> None:
        super().__init__(config)
        self.step = self.spec.steps_per(self.config.rate_hz)
        self.n_waypoints = self.spec.num_points // self.step
        self.knot_index = np.arange(self.step - 1, self.spec.num_points, self.step)
        self.knot_times = self.spec.times[self.knot_index]
        self.centers = np.zeros((self.n_waypoints, 2, self.config.bins))

    @property
    def vocab_size(self) -> int:
        return 2 * self.config.bins

    @property
    def num_tokens(self) -> int:
        return 2 * self.n_waypoints

    def _values(self, trajectory: np.ndarray, ego: EgoState) -> np.ndarray:
        """The binned quantity at the waypoints, ``(K, 2)``."""
        xy = trajectory[self.knot_index, :2].copy()
        if self.config.relative == "constant_velocity":
            xy[:, 0] -= ego.speed * self.knot_times
        return xy

    def envelope(self) -> np.ndarray:
        """Physical range of the binned values at each waypoint, ``(K, 2, 2)`` (lo, hi)."""
        t = self.knot_times
        lat = np.minimum(0.5 * MAX_LAT_ACCEL * t**2, MAX_SPEED * t)
        if self.config.relative == "constant_velocity":
            x = np.stack([-np.minimum(0.5 * MAX_DECEL * t**2, MAX_SPEED * t),
                          0.5 * MAX_ACCEL * t**2], axis=1)
        else:
            x = np.stack([-lat, MAX_SPEED * t], axis=1)
        return np.stack([x, np.stack([-lat, lat], axis=1)], axis=1)

    def _fit(self, trajectories: np.ndarray, egos: list[EgoState]) -> None:
        values = np.stack([self._values(t, e) for t, e in zip(trajectories, egos, strict=True)])
        n = self.config.bins
        env = self.envelope()
        for k in range(self.n_waypoints):
            for d in range(2):
                v = values[:, k, d]
                if self.config.spacing == "uniform":
                    lo, hi = min(float(v.min()), env[k, d, 0]), max(float(v.max()), env[k, d, 1])
                    pad = 0.05 * (hi - lo) + 1e-3
                    self.centers[k, d] = np.linspace(lo - pad, hi + pad, n)
                else:
                    c = np.quantile(v, (np.arange(n) + 0.5) / n)
                    c[0], c[-1] = min(c[0], env[k, d, 0]), max(c[-1], env[k, d, 1])
                    self.centers[k, d] = np.maximum.accumulate(c)

    def knot_bound_m(self) -> float:
        """Largest error at a waypoint for values inside the fitted range: half the widest gap
        between neighbouring bin centres, per axis, combined."""
        gaps = np.diff(self.centers, axis=-1).max(axis=-1) / 2        # (K, 2)
        return float(np.max(np.hypot(gaps[:, 0], gaps[:, 1])))

    def analytic_bound_m(self) -> float | None:
        if self.step == 1 and self.fitted:  # no interpolation: the knot bound is the bound
            return self.knot_bound_m()
        return None

    def _encode(self, trajectory: np.ndarray, ego: EgoState) -> np.ndarray:
        values = self._values(trajectory, ego)
        ids = np.zeros((self.n_waypoints, 2), dtype=np.int64)
        for k in range(self.n_waypoints):
            for d in range(2):
                c = self.centers[k, d]
                i = int(np.clip(np.searchsorted(c, values[k, d]), 1, len(c) - 1))
                ids[k, d] = i if abs(c[i] - values[k, d]) < abs(values[k, d] - c[i - 1]) else i - 1
        ids[:, 1] += self.config.bins
        return ids.reshape(-1)

    def _decode(self, ids: np.ndarray, ego: EgoState) -> np.ndarray:
        n = self.config.bins
        pairs = ids.reshape(-1, 2)
        if np.any(pairs[:, 0] >= n) or np.any(pairs[:, 1] < n):
            raise ValueError(f"{self.name}: ids must alternate x ids 0..{n - 1} and y ids "
                             f"{n}..{2 * n - 1}, got {ids.tolist()}")
        k = np.arange(self.n_waypoints)
        xy = np.stack([self.centers[k, 0, pairs[:, 0]], self.centers[k, 1, pairs[:, 1] - n]],
                      axis=1)
        if self.config.relative == "constant_velocity":
            xy[:, 0] += ego.speed * self.knot_times
        times = np.concatenate([[0.0], self.knot_times])
        knots = np.vstack([np.zeros((1, 2)), xy])
        spline = CubicSpline(times, knots, axis=0,
                             bc_type=((1, np.array([ego.speed, 0.0])), (2, np.zeros(2))))
        pos = spline(self.spec.times)
        return np.column_stack([pos, yaw_from_positions(pos, self.spec.hz)])

    def _state(self) -> dict[str, np.ndarray]:
        return {"centers": self.centers}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.centers = np.asarray(state["centers"], dtype=np.float64)
