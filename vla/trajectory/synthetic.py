"""A synthetic driving-trajectory generator with the data set's exact shape.

Each trajectory is a unicycle driven by smooth, jerk-limited profiles of acceleration and
curvature (or yaw rate), integrated at ten times the output rate and sampled at ``hz``. The
scenarios cover what the codecs must represent:

- ``stopped``: standing still for the whole horizon;
- ``stopping``: braking at 1-4 m/s^2 from 3-25 m/s, usually to a standstill;
- ``cruising``: 5-30 m/s with small speed changes and gentle road curvature;
- ``accelerating``: pulling away or speeding up at 0.5-3 m/s^2 to a target speed;
- ``lane_change``: a 2.5-4 m lateral move over 3-5 s at 8-32 m/s;
- ``turn``: a 45-110 degree junction turn of 6-25 m radius at 2-10 m/s (lateral acceleration
  kept under 4 m/s^2), often braking into it;
- ``high_speed``: 25-35 m/s on large-radius curves.

It simplifies: no reversing, no slip, no road geometry beyond curvature, no other agents; the
mix of scenarios is uniform rather than the long tail of real logs. Use it to develop and test
codecs until a simulator data set exists, never to claim real-world numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla.trajectory.types import EgoState, TrajectorySpec

SCENARIOS: tuple[str, ...] = (
    "stopped", "stopping", "cruising", "accelerating", "lane_change", "turn", "high_speed",
)
MAX_SPEED = 35.0
SUBSTEPS = 10
MAX_LAT_ACCEL = 3.8


def _smooth_step(t: np.ndarray, start: float, duration: float) -> np.ndarray:
    """0 before ``start``, 1 after ``start + duration``, a C1 smoothstep in between."""
    u = np.clip((t - start) / max(duration, 1e-6), 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _ramps(t: np.ndarray, start_value: float, changes: Sequence[tuple[float, float]],
           jerk: float) -> np.ndarray:
    """A profile that moves from ``start_value`` to each ``(t_i, target_i)`` with bounded jerk."""
    out = np.full_like(t, start_value)
    current = start_value
    for t_i, target in changes:
        delta = target - current
        duration = 1.5 * abs(delta) / jerk          # smoothstep's peak slope is 1.5 / duration
        out = out + delta * _smooth_step(t, t_i, duration)
        current = target
    return out


def _wiggle(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """Two slow sines: the small, smooth variations of a human driver."""
    out = np.zeros_like(t)
    for _ in range(2):
        period = rng.uniform(3.0, 10.0)
        out += rng.uniform(0, amplitude) * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3))
    return out


def _profiles(kind: str, rng: np.random.Generator, t: np.ndarray, horizon: float
              ) -> tuple[float, np.ndarray, np.ndarray, bool]:
    """(v0, accel(t), lateral(t), lateral_is_yaw_rate) for one scenario."""
    zero = np.zeros_like(t)
    jerk = rng.uniform(1.0, 3.0)
    if kind == "stopped":
        return 0.0, zero, zero, False
    if kind == "stopping":
        v0 = rng.uniform(3.0, 25.0)
        a0 = rng.uniform(-0.5, 0.3)
        decel = -rng.uniform(1.0, 4.0)
        accel = _ramps(t, a0, [(rng.uniform(0.0, 2.0), decel)], jerk)
        curv = rng.uniform(-0.003, 0.003) + zero
        return v0, accel, curv, False
    if kind == "cruising":
        v0 = rng.uniform(5.0, 30.0)
        accel = _ramps(t, rng.uniform(-0.3, 0.3), [(rng.uniform(0, 4), rng.uniform(-0.8, 0.8))],
                       jerk) + _wiggle(rng, t, 0.15)
        curv = _ramps(t, rng.uniform(-0.004, 0.004), [(rng.uniform(0, 4),
                                                       rng.uniform(-0.006, 0.006))], 0.01)
        return v0, accel, curv, False
    if kind == "accelerating":
        v0 = 0.0 if rng.random() < 0.4 else rng.uniform(1.0, 20.0)
        a_max = rng.uniform(0.5, 3.0)
        start = rng.uniform(0.0, 2.0)
        accel = _ramps(t, 0.0 if v0 == 0 else rng.uniform(0, a_max), [(start, a_max)], jerk)
        v_target = min(MAX_SPEED, v0 + rng.uniform(4.0, 15.0))
        # ease off once the target speed would be reached
        v_est = v0 + np.cumsum(accel) * (t[1] - t[0])
        reach = np.flatnonzero(v_est >= v_target)
        if reach.size:
            t_reach = t[reach[0]]
            accel = accel * (1 - _smooth_step(t, t_reach - 0.5, 1.5 * a_max / jerk))
        curv = rng.uniform(-0.003, 0.003) + zero
        return v0, accel, curv, False
    if kind == "lane_change":
        v0 = rng.uniform(8.0, 32.0)
        offset = rng.choice([-1.0, 1.0]) * rng.uniform(2.5, 4.0)
        duration = rng.uniform(3.0, 5.0)
        start = rng.uniform(0.0, max(0.0, horizon - duration))
        amp = 2 * np.pi * offset / (v0 * duration**2)
        u = (t - start) / duration
        yaw_rate = np.where((u >= 0) & (u <= 1), amp * np.sin(2 * np.pi * u), 0.0)
        accel = _ramps(t, rng.uniform(-0.3, 0.5), [], jerk) + _wiggle(rng, t, 0.1)
        return v0, accel, yaw_rate, True
    if kind == "turn":
        radius = rng.uniform(6.0, 25.0)
        v_turn = min(rng.uniform(2.0, 10.0), np.sqrt(3.8 * radius))
        braking = rng.random() < 0.5
        v0 = v_turn + (rng.uniform(1.0, 5.0) if braking else 0.0)
        angle = np.deg2rad(rng.uniform(45.0, 110.0)) * rng.choice([-1.0, 1.0])
        start = rng.uniform(0.0, 2.5)
        accel = zero.copy()
        if braking:
            decel = -min(3.0, (v0**2 - v_turn**2) / (2 * max(v_turn * start, 1.0)))
            accel = _ramps(t, 0.0, [(0.0, decel), (max(start - 0.3, 0.2), 0.0)], 4.0)
        k_max = np.sign(angle) / radius
        ramp = rng.uniform(0.8, 1.5)
        hold = max(0.0, abs(angle) * radius / max(v_turn, 1.0) - ramp)
        curv = k_max * (_smooth_step(t, start, ramp) - _smooth_step(t, start + ramp + hold, ramp))
        accel = accel + _ramps(t, 0.0, [(start + ramp + hold, rng.uniform(0.0, 1.5))], jerk)
        return v0, accel, curv, False
    if kind == "high_speed":
        v0 = rng.uniform(25.0, MAX_SPEED)
        accel = _ramps(t, rng.uniform(-0.3, 0.3), [(rng.uniform(0, 4), rng.uniform(-1.0, 0.6))],
                       jerk) + _wiggle(rng, t, 0.1)
        curv = _ramps(t, rng.uniform(-0.002, 0.002), [(rng.uniform(0, 4),
                                                       rng.uniform(-0.002, 0.002))], 0.004)
        return v0, accel, curv, False
    raise ValueError(f"unknown scenario {kind!r}; choose from {SCENARIOS}")


def generate(n: int, seed: int = 0, spec: TrajectorySpec | None = None,
             scenarios: Sequence[str] | None = None
             ) -> tuple[np.ndarray, list[EgoState], list[str]]:
    """Generate ``n`` trajectories: ``(trajectories (n, T, 3), ego states, scenario names)``.

    Scenarios are drawn uniformly from ``scenarios`` (default: all of :data:`SCENARIOS`).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    spec = spec or TrajectorySpec()
    names = tuple(scenarios or SCENARIOS)
    for name in names:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; choose from {SCENARIOS}")
    rng = np.random.default_rng(seed)
    dt = spec.dt / SUBSTEPS
    steps = spec.num_points * SUBSTEPS
    t = dt * np.arange(steps)                      # the time at the start of each fine step
    v0s, accels, lats, is_rate = np.zeros(n), np.zeros((n, steps)), np.zeros((n, steps)), []
    kinds = [str(names[i]) for i in rng.integers(0, len(names), size=n)]
    for i, kind in enumerate(kinds):
        v0s[i], accels[i], lats[i], rate = _profiles(kind, rng, t, spec.horizon_s)
        if not rate:  # keep lateral acceleration v^2 k under MAX_LAT_ACCEL along the way
            v_est = np.clip(v0s[i] + np.cumsum(accels[i]) * dt, 1.0, MAX_SPEED)
            k_max = MAX_LAT_ACCEL / v_est**2
            lats[i] = np.clip(lats[i], -k_max, k_max)
        is_rate.append(rate)
    is_rate_arr = np.asarray(is_rate, dtype=bool)
    x, y, th, v = np.zeros(n), np.zeros(n), np.zeros(n), v0s.copy()
    out = np.zeros((n, spec.num_points, 3))
    for j in range(steps):
        a = np.minimum(accels[:, j], np.where(v >= MAX_SPEED, 0.0, np.inf))
        v_next = np.maximum(v + a * dt, 0.0)
        v_mid = 0.5 * (v + v_next)
        yaw_rate = np.where(is_rate_arr, lats[:, j], lats[:, j] * v_mid)
        yaw_rate = np.where(v_mid > 0, yaw_rate, 0.0)
        th_mid = th + 0.5 * yaw_rate * dt
        x = x + v_mid * np.cos(th_mid) * dt
        y = y + v_mid * np.sin(th_mid) * dt
        th = th + yaw_rate * dt
        v = v_next
        if (j + 1) % SUBSTEPS == 0:
            out[:, (j + 1) // SUBSTEPS - 1] = np.stack([x, y, th], axis=1)
    egos = []
    for i in range(n):
        moving = v0s[i] > 0
        a0 = float(accels[i, 0]) if (moving or accels[i, 0] > 0) else 0.0
        rate0 = lats[i, 0] if is_rate_arr[i] else lats[i, 0] * v0s[i]
        egos.append(EgoState(speed=float(v0s[i]), accel=a0, yaw_rate=float(rate0)))
    return out, egos, kinds
