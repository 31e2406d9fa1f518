"""The one meta-action deriver: any trajectory → (longitudinal, lateral) meta-action.

Labels use it on ground truth, the consistency reward and the metrics use it on
predictions. The input is a trajectory in the ego frame at t0 (x forward, y left,
yaw counter-clockwise), sampled at ``hz`` from t = 1/hz, plus the ego speed at t0.

Longitudinal (kinematic) classes, over the first ``lon_window_s`` seconds:

* ``stop``        the speed at the end of the window is below ``stop_speed`` (m/s);
* ``decelerate``  the speed drops by more than ``dv_threshold`` (m/s);
* ``accelerate``  the speed rises by more than ``dv_threshold``;
* ``keep_speed``  otherwise.

Lateral classes, over the whole horizon:

* ``turn_left`` / ``turn_right``  the heading changes by more than ``turn_yaw`` (rad),
  counter-clockwise (left) or clockwise (right);
* ``lane_change_left`` / ``lane_change_right``  otherwise, if the path stays nearly
  parallel to the initial heading up to ``lat_window_s`` (|yaw| below
  ``parallel_yaw``) and its lateral offset there exceeds ``lane_change_offset`` (m), to
  the left (y > 0) or right;
* ``keep_lane``  otherwise (straight, or following a curved road without a net turn).

Decision labels carry finer longitudinal classes whose *cause* the trajectory cannot
show: ``follow`` (keep speed behind a lead vehicle) and ``yield`` (slow down or stop
for a vehicle with priority). :data:`KINEMATIC_OF` maps every decision to the
kinematic classes it is consistent with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LONGITUDINAL = ("stop", "yield", "follow", "decelerate", "keep_speed", "accelerate")
LATERAL = ("keep_lane", "lane_change_left", "lane_change_right", "turn_left", "turn_right")

KINEMATIC_OF: dict[str, tuple[str, ...]] = {
    "stop": ("stop",),
    "yield": ("decelerate", "stop"),
    "follow": ("keep_speed",),
    "decelerate": ("decelerate",),
    "keep_speed": ("keep_speed",),
    "accelerate": ("accelerate",),
}


@dataclass(frozen=True)
class DeriverThresholds:
    """Documented thresholds of the deriver (see the module docstring)."""

    lon_window_s: float = 3.0
    dv_threshold: float = 1.0
    stop_speed: float = 0.5
    lat_window_s: float = 4.0
    lane_change_offset: float = 1.8
    turn_yaw: float = 0.6
    parallel_yaw: float = 0.5

    def __post_init__(self) -> None:
        for name in ("lon_window_s", "dv_threshold", "stop_speed", "lat_window_s",
                     "lane_change_offset", "turn_yaw", "parallel_yaw"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DeriverThresholds.{name} must be positive")


DEFAULT_THRESHOLDS = DeriverThresholds()


@dataclass(frozen=True)
class MetaAction:
    longitudinal: str
    lateral: str

    def __post_init__(self) -> None:
        if self.longitudinal not in LONGITUDINAL:
            raise ValueError(f"unknown longitudinal meta-action {self.longitudinal!r}; "
                             f"expected one of {LONGITUDINAL}")
        if self.lateral not in LATERAL:
            raise ValueError(f"unknown lateral meta-action {self.lateral!r}; "
                             f"expected one of {LATERAL}")

    def to_json(self) -> dict:
        return {"longitudinal": self.longitudinal, "lateral": self.lateral}

    @classmethod
    def from_json(cls, obj: dict | None) -> MetaAction | None:
        """The meta-action of ``{longitudinal, lateral}``; None for None."""
        return None if obj is None else cls(obj["longitudinal"], obj["lateral"])


def speeds_along(trajectory: np.ndarray, hz: float) -> np.ndarray:
    """Speed at each trajectory step, from finite differences of the positions."""
    xy = np.vstack([[0.0, 0.0], np.asarray(trajectory, float)[:, :2]])
    step = np.linalg.norm(np.diff(xy, axis=0), axis=1) * hz
    # a forward difference lags half a step: average neighbours for a centred estimate
    centred = np.empty_like(step)
    centred[:-1] = 0.5 * (step[:-1] + step[1:])
    centred[-1] = step[-1]
    return centred


def classify_longitudinal(v0: float, v_end: float,
                          thresholds: DeriverThresholds = DEFAULT_THRESHOLDS) -> str:
    """Kinematic longitudinal class from the speed at t0 and at the end of the window."""
    if v_end < thresholds.stop_speed:
        return "stop"
    if v_end - v0 < -thresholds.dv_threshold:
        return "decelerate"
    if v_end - v0 > thresholds.dv_threshold:
        return "accelerate"
    return "keep_speed"


def derive_meta_action(trajectory: np.ndarray, speed0: float, hz: float = 10.0,
                       thresholds: DeriverThresholds = DEFAULT_THRESHOLDS) -> MetaAction:
    """The kinematic meta-action of ``trajectory`` (T × ≥2 array, ego frame at t0)."""
    traj = np.asarray(trajectory, float)
    if traj.ndim != 2 or traj.shape[1] < 2 or len(traj) < 2:
        raise ValueError(f"trajectory must be a (T, 2+) array with T >= 2, got {traj.shape}")
    if not np.isfinite(traj).all():
        raise ValueError("trajectory contains NaN or infinite values")
    n_lon = min(len(traj), max(1, round(thresholds.lon_window_s * hz)))
    v = speeds_along(traj, hz)
    lon = classify_longitudinal(float(speed0), float(np.mean(v[max(0, n_lon - 3):n_lon])),
                                thresholds)

    yaw = _heading_change(traj)
    n_lat = min(len(traj), max(1, round(thresholds.lat_window_s * hz)))
    offset = float(traj[n_lat - 1, 1])
    parallel = _max_heading_deviation(traj[:n_lat]) < thresholds.parallel_yaw
    if yaw > thresholds.turn_yaw:
        lat = "turn_left"
    elif yaw < -thresholds.turn_yaw:
        lat = "turn_right"
    elif parallel and offset > thresholds.lane_change_offset:
        lat = "lane_change_left"
    elif parallel and offset < -thresholds.lane_change_offset:
        lat = "lane_change_right"
    else:
        lat = "keep_lane"
    return MetaAction(lon, lat)


def _max_heading_deviation(traj: np.ndarray) -> float:
    """Largest |heading| (rad) along the trajectory, relative to the heading at t0."""
    if traj.shape[1] >= 3:
        return float(np.max(np.abs(np.unwrap(np.concatenate([[0.0], traj[:, 2]])))))
    d = np.diff(np.vstack([[0.0, 0.0], traj[:, :2]]), axis=0)
    moving = np.linalg.norm(d, axis=1) > 1e-3
    if not moving.any():
        return 0.0
    return float(np.max(np.abs(np.arctan2(d[moving, 1], d[moving, 0]))))


def _heading_change(traj: np.ndarray) -> float:
    """Net heading change over the trajectory (rad, CCW positive)."""
    if traj.shape[1] >= 3:
        return float(np.unwrap(np.concatenate([[0.0], traj[:, 2]]))[-1])
    d = np.diff(np.vstack([[0.0, 0.0], traj[:, :2]]), axis=0)
    moving = np.linalg.norm(d, axis=1) > 1e-3
    if not moving.any():
        return 0.0
    return float(np.arctan2(d[moving][-1, 1], d[moving][-1, 0]))


def is_consistent(decision: MetaAction, derived: MetaAction) -> tuple[bool, bool]:
    """(longitudinal agrees, lateral agrees) between a written decision and a derived one."""
    lon_ok = derived.longitudinal in KINEMATIC_OF[decision.longitudinal]
    return lon_ok, decision.lateral == derived.lateral
