"""Geometry helpers: world ↔ ego frame at a given instant of an episode log."""

from __future__ import annotations

import numpy as np


def to_ego(points: np.ndarray, ego_pose: np.ndarray) -> np.ndarray:
    """World (..., 2 or 3: x, y[, yaw]) → ego frame of ``ego_pose`` (x, y, yaw)."""
    x0, y0, yaw0 = ego_pose[:3]
    c, s = np.cos(yaw0), np.sin(yaw0)
    dx, dy = points[..., 0] - x0, points[..., 1] - y0
    out = [dx * c + dy * s, -dx * s + dy * c]
    if points.shape[-1] >= 3:
        out.append((points[..., 2] - yaw0 + np.pi) % (2 * np.pi) - np.pi)
    return np.stack(out, axis=-1)


def unwrap_yaw(traj: np.ndarray) -> np.ndarray:
    """Continuous yaw along a trajectory whose yaw column wraps at ±pi."""
    out = traj.copy()
    out[:, 2] = np.unwrap(out[:, 2])
    return out
