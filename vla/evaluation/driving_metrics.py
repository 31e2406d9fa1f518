"""Closed-loop driving metrics from the simulator's states, the PDMS-like score and
bootstrap confidence intervals.

All inputs are the logged world states of an episode (the ego's and the other agents'),
sampled at the simulation rate after the planner took over:

- ``time_to_collision``: per step, the smallest time until the ego's front reaches the rear of
  a vehicle ahead of it in its corridor (lateral overlap of the two boxes, widened by
  ``margin_m``), at the current closing speed; infinite when nothing closes in. A violation is
  a step with TTC below ``ttc_threshold_s`` (0.9 s, NAVSIM's);
- ``comfort``: longitudinal acceleration, jerk, yaw rate and yaw acceleration, from finite
  differences smoothed by a Savitzky–Golay filter, within NAVSIM's bounds over the episode;
- off the lanes (:func:`vla.sim.drivable.off_lanes`, where the environment ends an episode):
  the drivable area is the union of the lane strips (as in :mod:`vla.scoring`), not
  highway-env's ``on_road``, which asks only the lane its heading-weighted search picks;
- ``progress``: how far along the expert's driven path (same scenario, same seed) the ego's
  final position projects, over the expert's path length, clipped to [0, 1];
- ``pdms_like`` = NC · DAC · (5 · TTC + 5 · EP + 2 · C) / 12, with NC, DAC, TTC, C in {0, 1};
- ``bootstrap_ci``: a percentile-bootstrap interval of a mean over episodes.

The score is called PDMS-*like* because it takes NAVSIM's formula but not its inputs.
What differs from NAVSIM's PDM score:

- simulation: NAVSIM scores one 4 s plan, tracked by an LQR controller while the other
  agents replay their logs (non-reactive); here the whole episode after the warm-up is
  driven in closed loop (re-planned every ``decision_every_s``, followed by a pure-pursuit
  tracker, other vehicles reacting), and each sub-score covers that whole episode;
- NC: NAVSIM counts only at-fault collisions and gives 0.5 for one with a static object;
  here any collision highway-env reports is 0 (fault is not judged) and ends the episode;
- DAC: NAVSIM checks the box corners against the drivable-area map at every step; here the
  vehicle's centre must stay within the lane strips plus 0.5 m, and an episode ends after
  0.5 s outside;
- EP: NAVSIM divides the progress along the route by that of its privileged PDM-Closed
  planner; here the reference is the simulator's own driver (IDM + MOBIL) on the same
  seed, and the ego's final position is projected onto that driver's path;
- TTC: NAVSIM projects all agents' boxes forward at constant velocity; here only vehicles
  ahead in the ego's corridor count, at their current closing speed;
- C: NAVSIM also bounds lateral acceleration and the jerk magnitude; those are ignored;
- driving-direction and traffic-light compliance are not scored (NAVSIM's v1 weighs the
  former 0 too).

Simplifications: TTC looks only at vehicles ahead in the ego's corridor (no crossing
traffic) and assumes both keep their speeds; comfort ignores lateral jerk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla.scoring import project_to_polyline

TTC_THRESHOLD_S = 0.9


@dataclass(frozen=True)
class ComfortBounds:
    """NAVSIM's comfort bounds (m/s², m/s³, rad/s, rad/s²)."""

    min_lon_accel: float = -4.05
    max_lon_accel: float = 2.40
    max_abs_lon_jerk: float = 4.13
    max_abs_yaw_rate: float = 0.95
    max_abs_yaw_accel: float = 1.93


def time_to_collision(ego: np.ndarray, ego_size: np.ndarray, agents: np.ndarray,
                      sizes: np.ndarray, margin_m: float = 0.3) -> np.ndarray:
    """TTC (s) per step. ``ego`` (N, 5): x, y, yaw, speed, accel; ``agents`` (A, N, 5) with
    NaN rows where an agent is absent; ``sizes`` (A, 2) length, width."""
    n = len(ego)
    out = np.full(n, np.inf)
    for k in range(n):
        x, y, yaw, v = ego[k, :4]
        c, s = np.cos(yaw), np.sin(yaw)
        for a in range(len(agents)):
            ax, ay, ayaw, av = agents[a, k, :4]
            if np.isnan(ax):
                continue
            dx, dy = ax - x, ay - y
            lon, lat = dx * c + dy * s, -dx * s + dy * c
            if lon <= 0 or abs(lat) > (ego_size[1] + sizes[a, 1]) / 2 + margin_m:
                continue
            gap = lon - (ego_size[0] + sizes[a, 0]) / 2
            closing = v - av * np.cos(ayaw - yaw)
            if gap <= 0:
                out[k] = 0.0
            elif closing > 1e-3:
                out[k] = min(out[k], gap / closing)
    return out


def _smooth_derivative(values: np.ndarray, dt: float, window: int = 9) -> np.ndarray:
    from scipy.signal import savgol_filter

    if len(values) < window:
        return np.gradient(values, dt) if len(values) > 1 else np.zeros_like(values)
    return savgol_filter(values, window, 2, deriv=1, delta=dt)


def comfort(ego: np.ndarray, dt: float, bounds: ComfortBounds = ComfortBounds()) -> dict:
    """Peak values and whether all stay within ``bounds`` (``ego`` as in TTC)."""
    speed, yaw = ego[:, 3], np.unwrap(ego[:, 2])
    accel = _smooth_derivative(speed, dt)
    jerk = _smooth_derivative(accel, dt)
    yaw_rate = _smooth_derivative(yaw, dt)
    yaw_accel = _smooth_derivative(yaw_rate, dt)
    peaks = {"min_lon_accel": float(accel.min()), "max_lon_accel": float(accel.max()),
             "max_abs_lon_jerk": float(np.abs(jerk).max()),
             "max_abs_yaw_rate": float(np.abs(yaw_rate).max()),
             "max_abs_yaw_accel": float(np.abs(yaw_accel).max())}
    ok = (peaks["min_lon_accel"] >= bounds.min_lon_accel
          and peaks["max_lon_accel"] <= bounds.max_lon_accel
          and peaks["max_abs_lon_jerk"] <= bounds.max_abs_lon_jerk
          and peaks["max_abs_yaw_rate"] <= bounds.max_abs_yaw_rate
          and peaks["max_abs_yaw_accel"] <= bounds.max_abs_yaw_accel)
    return {"comfortable": bool(ok), **{k: round(v, 3) for k, v in peaks.items()}}


def progress(ego_xy: np.ndarray, expert_xy: np.ndarray) -> float:
    """Arc position of the ego's last position along the expert's path, over its length."""
    expert_xy = np.asarray(expert_xy, float)
    length = float(np.linalg.norm(np.diff(expert_xy, axis=0), axis=1).sum())
    if length < 1.0:  # the expert stayed put: any planner that also stays put did as well
        return 1.0
    _, arc = project_to_polyline(np.asarray(ego_xy, float)[-1:], expert_xy)
    return float(np.clip(arc[0] / length, 0.0, 1.0))


def pdms_like(no_collision: bool, drivable: bool, ttc_ok: bool, ego_progress: float,
              comfortable: bool) -> float:
    """NAVSIM's PDM-score formula, NC · DAC · (5 · TTC + 5 · EP + 2 · C) / 12, on this
    module's inputs (see the module docstring for what differs from NAVSIM's)."""
    return float(no_collision) * float(drivable) * (
        5 * float(ttc_ok) + 5 * float(ego_progress) + 2 * float(comfortable)) / 12


def bootstrap_ci(values, resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean of ``values`` (one per episode).

    ``resamples`` resamples of the episodes with replacement, drawn from a generator seeded
    with ``seed`` (the same values and seed give the same interval); the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of their means. None
    entries are left out; None when nothing is left. When every value is the same the
    interval is that value: with n episodes and no collision, [0, 0] says only that the
    rate is likely below about 3 / n, not that it is zero.
    """
    x = np.asarray([v for v in values if v is not None], float)
    if len(x) == 0:
        return None
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError("resamples must be >= 1 and confidence in (0, 1)")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
