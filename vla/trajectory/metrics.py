"""Round-trip metrics: displacement errors, heading error and comfort.

Comfort follows NAVSIM's idea with the bounds of our issue: derivatives of the positions by a
Savitzky-Golay filter (window 7, cubic) over t0 and two points extrapolated backwards from the
ego state (so a trajectory that ignores the current speed shows up as a spike), then
|longitudinal acceleration| <= 4 m/s^2, |longitudinal jerk| <= 4 m/s^3 and |lateral
acceleration| <= 4.89 m/s^2 (NAVSIM's lateral bound) at every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import savgol_filter

from vla.trajectory.types import EgoState, wrap_angle


@dataclass(frozen=True)
class TrajectoryComfortBounds:
    """Bounds on a planned trajectory's derived motion (m/s², m/s³, m/s²): |longitudinal
    acceleration|, |longitudinal jerk| and |lateral acceleration| at every sample."""

    max_lon_accel: float = 4.0
    max_lon_jerk: float = 4.0
    max_lat_accel: float = 4.89


def displacement_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Per trajectory: ADE, FDE, largest point error (m) and mean / max heading error (deg)."""
    err = np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1)
    head = np.degrees(np.abs(wrap_angle(pred[..., 2] - gt[..., 2])))
    return {"ade": err.mean(-1), "fde": err[..., -1], "max_err": err.max(-1),
            "heading_mean": head.mean(-1), "heading_max": head.max(-1)}


def horizon_errors(pred: np.ndarray, gt: np.ndarray, hz: float,
                   horizons_s: tuple[float, ...] = (1.0, 2.0, 3.0)) -> dict[str, float]:
    """ADE / FDE over the whole horizon, and at each of ``horizons_s`` the L2 error *at* that
    instant (``l2_at_Ns``, UniAD's convention) and averaged *up to* it (``l2_avg_Ns``, ST-P3's)."""
    err = np.linalg.norm(np.asarray(pred)[:, :2] - np.asarray(gt)[:, :2], axis=-1)
    out = {"ade": float(err.mean()), "fde": float(err[-1])}
    for h in horizons_s:
        n = int(round(h * hz))
        out[f"l2_at_{h:.0f}s"] = float(err[n - 1])
        out[f"l2_avg_{h:.0f}s"] = float(err[:n].mean())
    return out


def kinematics(trajectory: np.ndarray, ego: EgoState, hz: float) -> dict[str, np.ndarray]:
    """Longitudinal acceleration, longitudinal jerk and lateral acceleration at t0 .. T."""
    dt = 1.0 / hz
    back = np.array([[-2 * ego.speed * dt + 2 * ego.accel * dt * dt, 0.0],
                     [-ego.speed * dt + 0.5 * ego.accel * dt * dt, 0.0], [0.0, 0.0]])
    pts = np.vstack([back, trajectory[:, :2]])
    window = min(7, len(pts) - (1 - len(pts) % 2))
    d = [savgol_filter(pts, window, 3, deriv=k, delta=dt, axis=0, mode="interp")
         for k in (1, 2, 3)]
    vel, acc, jerk = (x[2:] for x in d)
    speed = np.linalg.norm(vel, axis=1)
    yaw = np.concatenate([[0.0], trajectory[:, 2]])
    heading = np.where(speed > 0.5, np.arctan2(vel[:, 1], vel[:, 0]), yaw)
    t = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    lon = np.sum(acc * t, axis=1)
    lat = acc[:, 1] * t[:, 0] - acc[:, 0] * t[:, 1]
    return {"lon_accel": lon, "lon_jerk": np.sum(jerk * t, axis=1), "lat_accel": lat}


def is_comfortable(trajectory: np.ndarray, ego: EgoState, hz: float,
                   bounds: TrajectoryComfortBounds = TrajectoryComfortBounds()) -> bool:
    """Whether ``trajectory`` stays within ``bounds`` at every sample (see the module)."""
    k = kinematics(trajectory, ego, hz)
    return bool(np.all(np.abs(k["lon_accel"]) <= bounds.max_lon_accel)
                and np.all(np.abs(k["lon_jerk"]) <= bounds.max_lon_jerk)
                and np.all(np.abs(k["lat_accel"]) <= bounds.max_lat_accel))
