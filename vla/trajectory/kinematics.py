"""Unicycle kinematics in closed form, shared by the control-space codecs and the generator.

Over one interval the acceleration ``a`` and the curvature ``k`` are held constant (zero-order
hold). The distance travelled is ``s(t) = v t + a t^2 / 2`` until the speed reaches zero, after
which the vehicle stays stopped (no reversing). With constant curvature the pose is an exact
function of the arc length:

    theta(s) = theta0 + k s
    x(s) = x0 + s * cos(theta0 + k s / 2) * sinc(k s / 2)
    y(s) = y0 + s * sin(theta0 + k s / 2) * sinc(k s / 2)

so the rollout has no integration error and is vectorised over any leading batch shape.
"""

from __future__ import annotations

import numpy as np

#: The physical envelope every fixed-grid codec covers whatever its training set holds:
#: the strongest braking and acceleration, the tightest curvature (5 m radius), the largest
#: lateral acceleration and the highest speed a trajectory is expected to show.
MAX_DECEL = 6.0        # m/s^2
MAX_ACCEL = 4.0        # m/s^2
MAX_CURVATURE = 0.2    # 1/m
MAX_LAT_ACCEL = 5.0    # m/s^2
MAX_SPEED = 40.0       # m/s


def distance_travelled(v: np.ndarray, a: np.ndarray, t: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Distance and speed after time ``t`` from speed ``v`` under acceleration ``a``, stopping at 0.

    Broadcasts over all arguments; returns ``(s, v_t)``.
    """
    v = np.asarray(v, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    v_t = v + a * t
    s = v * t + 0.5 * a * t * t
    stops = v_t < 0
    if np.any(stops):
        with np.errstate(divide="ignore", invalid="ignore"):
            s_stop = np.where(a < 0, v * v / np.where(a < 0, -2.0 * a, 1.0), 0.0)
        s = np.where(stops, s_stop, s)
        v_t = np.where(stops, 0.0, v_t)
    return np.maximum(s, 0.0), v_t


def arc_pose(x0, y0, th0, k, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pose after arc length ``s`` along constant curvature ``k`` from ``(x0, y0, th0)``."""
    half = 0.5 * np.asarray(k) * np.asarray(s)
    sinc = np.sinc(half / np.pi)
    mid = th0 + half
    return x0 + s * np.cos(mid) * sinc, y0 + s * np.sin(mid) * sinc, th0 + 2.0 * half


def rollout_interval(state: np.ndarray, a: np.ndarray, k: np.ndarray, times: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Roll a batch of states forward over one zero-order-hold interval.

    ``state``: ``(..., 4)`` = x, y, yaw, speed; ``a``, ``k``: ``(...)``; ``times``: ``(n,)``
    sample times within the interval (the last one is its end). Returns the sampled poses
    ``(..., n, 3)`` and the state at the last time ``(..., 4)``.
    """
    x0, y0, th0, v0 = (state[..., i, None] for i in range(4))
    s, v_t = distance_travelled(v0, a[..., None], times)
    x, y, th = arc_pose(x0, y0, th0, k[..., None], s)
    poses = np.stack([x, y, th], axis=-1)
    end = np.concatenate([poses[..., -1, :], v_t[..., -1:]], axis=-1)
    return poses, end


def rollout(speed: float, accels: np.ndarray, curvatures: np.ndarray, steps_per_control: int,
            dt: float) -> np.ndarray:
    """Roll out a whole control sequence from (0, 0, 0) at ``speed``; returns ``(..., T, 3)``.

    ``accels`` and ``curvatures`` have shape ``(..., n_controls)``; each control is held for
    ``steps_per_control`` samples of ``dt`` seconds.
    """
    accels = np.asarray(accels, dtype=np.float64)
    curvatures = np.asarray(curvatures, dtype=np.float64)
    batch = accels.shape[:-1]
    state = np.zeros(batch + (4,))
    state[..., 3] = speed
    times = dt * np.arange(1, steps_per_control + 1)
    out = []
    for i in range(accels.shape[-1]):
        poses, state = rollout_interval(state, accels[..., i], curvatures[..., i], times)
        out.append(poses)
    return np.concatenate(out, axis=-2)


def to_local(points: np.ndarray, x0, y0, th0) -> np.ndarray:
    """Express ``(..., 2)`` points in the frame of pose ``(x0, y0, th0)``."""
    dx = points[..., 0] - x0
    dy = points[..., 1] - y0
    c, s = np.cos(th0), np.sin(th0)
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)


def to_global(points: np.ndarray, x0, y0, th0) -> np.ndarray:
    """Inverse of :func:`to_local`."""
    c, s = np.cos(th0), np.sin(th0)
    px, py = points[..., 0], points[..., 1]
    return np.stack([x0 + c * px - s * py, y0 + s * px + c * py], axis=-1)


def yaw_from_positions(xy: np.ndarray, hz: float, start_yaw: float = 0.0,
                       min_speed: float = 0.5) -> np.ndarray:
    """Heading along a ``(T, 2)`` path sampled at ``hz`` that starts at the origin.

    Central differences; where the vehicle moves slower than ``min_speed`` (m/s) the previous
    heading is kept, so a stopped or creeping vehicle keeps its yaw instead of getting the
    direction of quantisation noise.
    """
    pts = np.vstack([np.zeros((1, 2)), xy])
    fwd = np.diff(pts, axis=0)                       # step ending at each sample
    nxt = np.vstack([fwd[1:], fwd[-1:]])             # step starting at each sample
    d = fwd + nxt
    speeds = np.linalg.norm(d, axis=1) * hz / 2
    yaw = np.empty(len(xy))
    prev = start_yaw
    for i in range(len(xy)):
        if speeds[i] > min_speed:
            prev = float(np.arctan2(d[i, 1], d[i, 0]))
        yaw[i] = prev
    return np.unwrap(yaw)
