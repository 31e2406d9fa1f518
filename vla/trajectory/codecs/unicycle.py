"""Unicycle controls, as in Alpamayo-R1: (acceleration, curvature) per control step.

Encoding is *closed loop*: it walks the trajectory one control step at a time from the ego
speed at t0, inverts the unicycle in closed form for the step that lands exactly on the next
knot (pure pursuit: the arc through the target gives the curvature, the arc length over the step
gives the acceleration, braking to a standstill inside the step where needed), quantises both,
then tries the neighbouring bins and keeps the pair whose rollout stays closest to the
trajectory over the step (plus a heading term). Because every step starts from the *decoded*
state, quantisation errors are corrected by the next step instead of accumulating.

Each control is z-scored with the mean and standard deviation fitted on the training set and
quantised into uniform bins spanning the fitted range (0.1 % tails left out: braking to a
standstill inside a step gives rare extreme values) widened to the physical envelope of
``kinematics`` (-6..4 m/s^2, curvature +-0.2 1/m or lateral acceleration +-5 m/s^2), or
``mean +- z_max * std`` when ``z_max`` is set. Decoding
integrates the controls from the ego speed in closed form (see ``kinematics``), holding each
control for one step. Ids: ``[0, accel_bins)`` accelerations, then curvatures; with
``joint=True`` a single id per step encodes the pair (vocabulary ``accel_bins * curvature_bins``).

With ``spacing="quantile"`` the bins are not uniform but hold equal shares of the fitted values
(fine where controls are common, near zero; coarse in the tails, which the closed loop then
corrects over the following steps); the outermost bins stay on the ends of the range.

With ``lateral="lateral_accel"`` the second control is the lateral acceleration
``v_mid^2 * curvature`` (``v_mid``: the decoded mid-step speed, at least 1 m/s) instead of the
curvature: its bins then have the same resolution in metres at every speed, where curvature bins
sized for junction turns are coarse at motorway speed.

Simplifications: no slip, no reversing (speed is clamped at zero), zero-order hold (the decoded
acceleration steps between controls, so coarse rates show jerk spikes), and curvature is
meaningless while stopped (fitted as zero).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from vla.trajectory.codecs.base import (
    CodecConfig,
    TrajectoryCodec,
    _check_choice,
    _check_positive_int,
)
from vla.trajectory.kinematics import (
    MAX_ACCEL,
    MAX_CURVATURE,
    MAX_DECEL,
    MAX_LAT_ACCEL,
    rollout_interval,
    to_local,
)
from vla.trajectory.types import EgoState, wrap_angle

_TAIL = 1e-3  # share of fitted control values left outside the bin range at each end
_MAX_PURSUIT_ANGLE = 0.5 * np.pi  # rad; a target further off the heading is not pursued


@dataclasses.dataclass(frozen=True)
class UnicycleConfig(CodecConfig):
    """``rate_hz`` control steps per second; uniform bins per control."""

    rate_hz: float = 10.0
    accel_bins: int = 3000
    curvature_bins: int = 3000
    joint: bool = False
    z_max: float | None = None
    search_radius: int = 1
    lateral: str = "curvature"
    spacing: str = "uniform"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive_int(self, "accel_bins", "curvature_bins")
        if self.accel_bins < 2 or self.curvature_bins < 2:
            raise ValueError("UnicycleConfig: accel_bins and curvature_bins must be >= 2")
        self.spec.steps_per(self.rate_hz)
        if self.z_max is not None and not self.z_max > 0:
            raise ValueError(f"UnicycleConfig.z_max must be > 0 or None, got {self.z_max}")
        _check_choice(self, "lateral", ("curvature", "lateral_accel"))
        _check_choice(self, "spacing", ("uniform", "quantile"))
        if not isinstance(self.search_radius, int) or not 0 <= self.search_radius <= 5:
            raise ValueError(f"UnicycleConfig.search_radius must be an int in 0..5, "
                             f"got {self.search_radius!r}")


def invert_step(state: np.ndarray, target_xy: np.ndarray, dt: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Continuous (acceleration, curvature) that take ``state`` (..., 4) onto ``target_xy``.

    The curvature is that of the circle tangent to the current heading through the target; the
    acceleration makes the arc length come out in ``dt`` seconds (with a stop inside the step
    when the arc is shorter than half of ``v * dt``), clipped to twice the physical envelope.
    The curvature is clipped to +-0.2 1/m (a 5 m radius). A target more than 90 degrees off
    the heading (reversing) is not pursued: brake.
    """
    local = to_local(target_xy, state[..., 0], state[..., 1], state[..., 2])
    chord = np.hypot(local[..., 0], local[..., 1])
    alpha = np.arctan2(local[..., 1], local[..., 0])
    # a target behind the vehicle cannot be reached without reversing: brake instead
    moving = (chord > 1e-4) & (np.abs(alpha) < _MAX_PURSUIT_ANGLE)
    alpha = np.where(moving, alpha, 0.0)
    chord = np.where(moving, chord, 0.0)
    safe_chord = np.where(moving, chord, 1.0)
    # no car turns tighter than the envelope: jitter at a standstill must not spin the heading
    kappa = np.clip(np.where(moving, 2.0 * np.sin(alpha) / safe_chord, 0.0),
                    -MAX_CURVATURE, MAX_CURVATURE)
    ratio = np.where(np.abs(alpha) > 1e-6, alpha / np.where(np.abs(alpha) > 1e-6,
                                                            np.sin(alpha), 1.0), 1.0)
    s = chord * ratio
    v = state[..., 3]
    a_free = 2.0 * (s - v * dt) / dt**2
    stops = s < 0.5 * v * dt
    a_stop = -v * v / (2.0 * np.maximum(s, 1e-6))
    # a stop inside a very short arc asks for an unbounded deceleration: keep it physical
    a = np.clip(np.where(stops, a_stop, a_free), -2 * MAX_DECEL, 2 * MAX_ACCEL)
    return a, kappa


def path_speeds(trajectories: np.ndarray, hz: float) -> np.ndarray:
    """Speed at each sample (N, T) from central differences of the positions (t0 at origin)."""
    pts = np.concatenate([np.zeros_like(trajectories[:, :1, :2]), trajectories[..., :2]], axis=1)
    step = np.linalg.norm(np.diff(pts, axis=1), axis=-1) * hz          # (N, T): into sample i
    nxt = np.concatenate([step[:, 1:], step[:, -1:]], axis=1)
    return 0.5 * (step + nxt)


class UnicycleCodec(TrajectoryCodec):
    name = "unicycle"
    config_cls = UnicycleConfig
    config: UnicycleConfig

    def __init__(self, config: UnicycleConfig | None = None) -> None:
        super().__init__(config)
        self.step = self.spec.steps_per(self.config.rate_hz)
        self.n_controls = self.spec.num_points // self.step
        self.control_dt = self.step * self.spec.dt
        self.stats = np.zeros((2, 4))  # rows accel, lateral; columns mean, std, z_lo, z_hi
        self._centers = [np.zeros(self.config.accel_bins), np.zeros(self.config.curvature_bins)]

    @property
    def vocab_size(self) -> int:
        c = self.config
        return c.accel_bins * c.curvature_bins if c.joint else c.accel_bins + c.curvature_bins

    @property
    def num_tokens(self) -> int:
        return self.n_controls * (1 if self.config.joint else 2)

    # -- bins ------------------------------------------------------------------------------
    def centers(self, which: int) -> np.ndarray:
        """Bin centres in physical units for control ``which`` (0 accel, 1 lateral)."""
        return self._centers[which]

    def _quantise(self, value: np.ndarray, which: int) -> np.ndarray:
        """Index of the nearest bin centre."""
        c = self._centers[which]
        i = np.clip(np.searchsorted(c, value), 1, len(c) - 1)
        return np.where(np.abs(c[i] - value) < np.abs(value - c[i - 1]), i, i - 1).astype(np.int64)

    # -- the lateral control ---------------------------------------------------------------
    def _speed_sq(self, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Reference speed squared for lateral acceleration: mid-step speed, at least 1 m/s."""
        v_mid = np.maximum(v + 0.5 * a * self.control_dt, 0.0)
        return np.maximum(v_mid, 1.0) ** 2

    def _to_lateral(self, kappa: np.ndarray, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        if self.config.lateral == "curvature":
            return kappa
        return kappa * self._speed_sq(v, a)

    def _to_curvature(self, lateral: np.ndarray, v: np.ndarray, a: np.ndarray) -> np.ndarray:
        kappa = lateral if self.config.lateral == "curvature" else lateral / self._speed_sq(v, a)
        return np.clip(kappa, -MAX_CURVATURE, MAX_CURVATURE)

    # -- fit -------------------------------------------------------------------------------
    def _fit(self, trajectories: np.ndarray, egos: list[EgoState]) -> None:
        controls, moving = self._continuous_controls(trajectories, egos)
        for which in (0, 1):
            values = controls[..., which]
            if which == 1:
                values = values[moving]
            values = values.ravel()
            if values.size == 0:
                values = np.zeros(1)
            # robust: braking to a standstill inside one step gives rare, extreme values
            lo, hi = np.quantile(values, [_TAIL, 1 - _TAIL])
            core = values[(values >= lo) & (values <= hi)]
            mean = float(np.mean(core))
            std = float(np.std(core))
            # cover the physical envelope too, whatever the training set holds
            lat_env = MAX_CURVATURE if self.config.lateral == "curvature" else MAX_LAT_ACCEL
            env = (MAX_DECEL, MAX_ACCEL) if which == 0 else (lat_env, lat_env)
            lo, hi = min(lo, -env[0]), max(hi, env[1])
            std = std if std > 1e-9 else 1.0
            if self.config.z_max is not None:
                z_lo, z_hi = -self.config.z_max, self.config.z_max
            else:
                z_lo, z_hi = (lo - mean) / std, (hi - mean) / std
                pad = 0.05 * max(z_hi - z_lo, 1e-3)
                z_lo, z_hi = z_lo - pad, z_hi + pad
            self.stats[which] = (mean, std, z_lo, z_hi)
            n = self.config.accel_bins if which == 0 else self.config.curvature_bins
            if self.config.spacing == "uniform":
                centers = mean + std * np.linspace(z_lo, z_hi, n)
            else:  # equal-mass bins, the outermost on the ends of the range
                centers = np.quantile(values, (np.arange(n) + 0.5) / n)
                centers[0], centers[-1] = mean + std * z_lo, mean + std * z_hi
                centers = np.maximum.accumulate(centers)
            self._centers[which] = centers

    def _continuous_controls(self, trajectories: np.ndarray, egos: list[EgoState]
                             ) -> tuple[np.ndarray, np.ndarray]:
        """Teacher-forced controls (N, n_controls, 2) and whether the vehicle moved."""
        n = len(trajectories)
        state = np.zeros((n, 4))
        state[:, 3] = [e.speed for e in egos]
        times = self.spec.dt * np.arange(1, self.step + 1)
        controls = np.zeros((n, self.n_controls, 2))
        moving = np.zeros((n, self.n_controls), dtype=bool)
        for k in range(self.n_controls):
            target = trajectories[:, (k + 1) * self.step - 1, :2]
            a, kappa = invert_step(state, target, self.control_dt)
            controls[:, k] = np.stack([a, self._to_lateral(kappa, state[:, 3], a)], axis=1)
            start = state[:, :2]
            _, state = rollout_interval(state, a, kappa, times)
            moving[:, k] = np.linalg.norm(state[:, :2] - start, axis=1) > 0.05
        return controls, moving

    # -- encode / decode -------------------------------------------------------------------
    def encode_bins(self, trajectories: np.ndarray, egos: list[EgoState]) -> np.ndarray:
        """Closed-loop encoding of a batch: bin indices ``(N, n_controls, 2)``."""
        n = len(trajectories)
        r = self.config.search_radius
        offsets = np.array(list(itertools.product(range(-r, r + 1), repeat=2)))  # (C, 2)
        n_bins = np.array([self.config.accel_bins, self.config.curvature_bins])
        centers = (self.centers(0), self.centers(1))
        times = self.spec.dt * np.arange(1, self.step + 1)
        state = np.zeros((n, 4))
        state[:, 3] = [e.speed for e in egos]
        out = np.zeros((n, self.n_controls, 2), dtype=np.int64)
        rows = np.arange(n)
        speeds = path_speeds(trajectories, self.spec.hz)
        for k in range(self.n_controls):
            seg = trajectories[:, k * self.step:(k + 1) * self.step]
            a, kappa = invert_step(state, seg[:, -1, :2], self.control_dt)
            lateral = self._to_lateral(kappa, state[:, 3], a)
            base = np.stack([self._quantise(a, 0), self._quantise(lateral, 1)], axis=1)
            cand = np.clip(base[:, None, :] + offsets[None], 0, n_bins - 1)   # (N, C, 2)
            cand_state = np.broadcast_to(state[:, None, :], cand.shape[:2] + (4,))
            cand_a = centers[0][cand[..., 0]]
            cand_k = self._to_curvature(centers[1][cand[..., 1]], cand_state[..., 3], cand_a)
            poses, ends = rollout_interval(cand_state, cand_a, cand_k, times)
            err = np.sum((poses[..., :2] - seg[:, None, :, :2]) ** 2, axis=(-1, -2))
            reach = (state[:, 3] * self.control_dt + 1.0)[:, None]
            yaw_err = wrap_angle(ends[..., 2] - seg[:, None, -1, 2])
            speed_err = (ends[..., 3] - speeds[:, None, (k + 1) * self.step - 1]) * self.control_dt
            err = err + 0.5 * (reach * yaw_err) ** 2 + 0.5 * speed_err**2
            best = np.argmin(err, axis=1)
            out[:, k] = cand[rows, best]
            state = ends[rows, best]
        return out

    def _bins_to_ids(self, bins: np.ndarray) -> np.ndarray:
        if self.config.joint:
            return bins[..., 0] * self.config.curvature_bins + bins[..., 1]
        return np.stack([bins[..., 0], self.config.accel_bins + bins[..., 1]],
                        axis=-1).reshape(bins.shape[:-2] + (-1,))

    def _ids_to_bins(self, ids: np.ndarray) -> np.ndarray:
        c = self.config
        if c.joint:
            return np.stack([ids // c.curvature_bins, ids % c.curvature_bins], axis=-1)
        pairs = ids.reshape(-1, 2)
        if np.any(pairs[:, 0] >= c.accel_bins) or np.any(pairs[:, 1] < c.accel_bins):
            raise ValueError(
                f"{self.name}: ids must alternate acceleration ids 0..{c.accel_bins - 1} and "
                f"curvature ids {c.accel_bins}..{self.vocab_size - 1}, got {ids.tolist()}")
        return np.stack([pairs[:, 0], pairs[:, 1] - c.accel_bins], axis=-1)

    def _encode(self, trajectory: np.ndarray, ego: EgoState) -> np.ndarray:
        return self._bins_to_ids(self.encode_bins(trajectory[None], [ego]))[0]

    def _decode(self, ids: np.ndarray, ego: EgoState) -> np.ndarray:
        bins = self._ids_to_bins(ids)
        state = np.array([0.0, 0.0, 0.0, ego.speed])
        times = self.spec.dt * np.arange(1, self.step + 1)
        out = []
        accels, laterals = self.centers(0), self.centers(1)
        for ia, ik in bins:
            a = np.asarray(accels[ia])
            kappa = self._to_curvature(np.asarray(laterals[ik]), state[3], a)
            poses, state = rollout_interval(state, a, kappa, times)
            out.append(poses)
        return np.concatenate(out, axis=0)

    def _state(self) -> dict[str, np.ndarray]:
        return {"stats": self.stats, "accel_centers": self._centers[0],
                "lateral_centers": self._centers[1]}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.stats = np.asarray(state["stats"], dtype=np.float64)
        self._centers = [np.asarray(state["accel_centers"], dtype=np.float64),
                         np.asarray(state["lateral_centers"], dtype=np.float64)]
