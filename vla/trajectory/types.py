"""The trajectory data contract: ego state, sampling spec and array checks.

A trajectory is a float array of shape ``(T, 3)``: x (m, forward), y (m, left), yaw (rad,
counter-clockwise) in the ego frame at t0, sampled at ``hz`` for t = 1/hz, 2/hz, ..., horizon.
t0 itself, the pose (0, 0, 0), is not included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EgoState:
    """The ego vehicle's motion at t0: speed (m/s, >= 0), acceleration (m/s^2), yaw rate
    (rad/s), and ``intent_lon`` / ``intent_lat``, the meta-action a trajectory is written under
    (the label when encoding a training target, the model's own written meta-action when
    decoding its output; None where there is none). Codecs with a decision-conditioned prior
    read it; the others ignore it."""

    speed: float
    accel: float = 0.0
    yaw_rate: float = 0.0
    intent_lon: str | None = None
    intent_lat: str | None = None

    def __post_init__(self) -> None:
        for name in ("speed", "accel", "yaw_rate"):
            value = getattr(self, name)
            if not isinstance(value, int | float | np.floating | np.integer):
                raise TypeError(f"EgoState.{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(float(value)):
                raise ValueError(f"EgoState.{name} must be finite, got {value}")
        if self.speed < 0:
            raise ValueError(f"EgoState.speed must be >= 0 m/s, got {self.speed}")
        for name in ("intent_lon", "intent_lat"):  # the names: vla.meta_action's vocabulary
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"EgoState.{name} must be a meta-action class name or None, "
                                 f"got {value!r}")


def ego_state_of(sample: dict, with_label: bool = False) -> EgoState:
    """The ego state at t0 of a data-set row (``ego_speed``, ``ego_accel``, ``ego_yaw_rate``);
    ``with_label`` adds the row's labelled ``decision_lon`` / ``decision_lat`` as the intent
    (for encoding its training target; never for decoding a model's output, which carries its
    own)."""
    return EgoState(speed=max(0.0, float(sample["ego_speed"])),
                    accel=float(sample.get("ego_accel") or 0.0),
                    yaw_rate=float(sample.get("ego_yaw_rate") or 0.0),
                    intent_lon=sample.get("decision_lon") if with_label else None,
                    intent_lat=sample.get("decision_lat") if with_label else None)


@dataclass(frozen=True)
class TrajectorySpec:
    """How a trajectory is sampled: ``hz`` samples per second over ``horizon_s`` seconds."""

    hz: float = 10.0
    horizon_s: float = 6.0

    def __post_init__(self) -> None:
        if not (self.hz > 0 and math.isfinite(self.hz)):
            raise ValueError(f"hz must be a positive number, got {self.hz}")
        if not (self.horizon_s > 0 and math.isfinite(self.horizon_s)):
            raise ValueError(f"horizon_s must be a positive number, got {self.horizon_s}")
        steps = self.horizon_s * self.hz
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(
                f"horizon_s * hz must be a whole number of samples, got "
                f"{self.horizon_s} * {self.hz} = {steps}"
            )

    @property
    def num_points(self) -> int:
        """T, the number of samples (t0 excluded)."""
        return int(round(self.horizon_s * self.hz))

    @property
    def dt(self) -> float:
        return 1.0 / self.hz

    @property
    def times(self) -> np.ndarray:
        """Sample times t = 1/hz ... horizon_s, shape ``(T,)``."""
        return np.arange(1, self.num_points + 1, dtype=np.float64) / self.hz

    def steps_per(self, rate_hz: float, what: str = "rate_hz") -> int:
        """How many samples make one period of ``rate_hz``; it must divide the horizon evenly."""
        ratio = self.hz / rate_hz
        if rate_hz <= 0 or abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(
                f"{what}={rate_hz} must divide the sampling rate hz={self.hz} "
                f"(e.g. {self.hz}, {self.hz / 2}, {self.hz / 5}, {self.hz / 10})"
            )
        step = int(round(ratio))
        if self.num_points % step:
            raise ValueError(
                f"{what}={rate_hz}: {self.num_points} samples do not split into periods of {step}"
            )
        return step


def as_trajectory(trajectory: object, spec: TrajectorySpec | None = None) -> np.ndarray:
    """Check and convert a trajectory to a float64 ``(T, 3)`` array (T from ``spec`` if given)."""
    arr = np.asarray(trajectory, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"a trajectory must have shape (T, 3) [x, y, yaw], got {arr.shape}")
    if spec is not None and arr.shape[0] != spec.num_points:
        raise ValueError(
            f"expected {spec.num_points} points ({spec.horizon_s} s at {spec.hz} Hz), "
            f"got {arr.shape[0]}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("a trajectory must not contain NaN or infinite values")
    return arr


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def estimate_ego_state(trajectory: np.ndarray, hz: float) -> EgoState:
    """A rough ego state from the first samples, for callers that have none.

    Speed is extrapolated back to t0 from the first two displacements; yaw rate from the first
    yaw; acceleration from the change in displacement. It is only as good as the samples.
    """
    traj = np.asarray(trajectory, dtype=np.float64)
    pts = np.vstack([np.zeros((1, 2)), traj[:3, :2]])
    d = np.linalg.norm(np.diff(pts, axis=0), axis=1) * hz
    speed = max(0.0, 1.5 * d[0] - 0.5 * d[1]) if len(d) > 1 else float(d[0])
    accel = float((d[1] - d[0]) * hz) if len(d) > 1 else 0.0
    yaw_rate = float(traj[0, 2] * hz)
    return EgoState(speed=float(speed), accel=accel, yaw_rate=yaw_rate)
