"""Follow a planned trajectory in the simulator: pure pursuit for steering, P control for speed.

A plan is the model's (or a baseline's) trajectory, put into the world frame at the pose
where it was made: positions at ``hz`` from ``1/hz`` to the horizon. Every simulation step
the tracker

- steers by pure pursuit: the point ``lookahead`` metres further along the plan than the
  projection of the vehicle's centre, turned into a curvature ``2 y / d²`` in the vehicle
  frame, then into highway-env's bicycle-model steering angle;
- sets the acceleration to the plan's speed profile: the planned speed a short preview
  ahead of the time since the plan was made, its slope as feed-forward, plus a proportional
  correction; clipped to the vehicle's limits and never below a stop within one step.

Simplifications: the vehicle's centre (highway-env's reference point) follows the path, not
the rear axle; no steering-rate limit beyond highway-env's own; past the plan's end the last
speed and heading are held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla.meta_action import speeds_along


@dataclass(frozen=True)
class TrackerConfig:
    lookahead_min_m: float = 4.0
    lookahead_s: float = 0.6  # lookahead grows with speed: max(min, speed * this)
    speed_gain: float = 1.5  # 1/s
    preview_s: float = 0.0
    max_accel: float = 5.0
    max_brake: float = 8.0
    max_steering: float = np.pi / 4

    def __post_init__(self) -> None:
        for name in ("lookahead_min_m", "lookahead_s", "speed_gain", "max_accel", "max_brake",
                     "max_steering"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrackerConfig.{name} must be positive")
        if self.preview_s < 0:
            raise ValueError("TrackerConfig.preview_s must be >= 0")


@dataclass(frozen=True)
class Plan:
    """A trajectory in the world frame: ``xy`` (T, 2) at ``hz``, starting at ``origin``."""

    origin: np.ndarray  # (3,) world x, y, yaw where the plan was made
    xy: np.ndarray
    speeds: np.ndarray  # (T,) planned speed at each point
    hz: float
    made_at_s: float


def plan_from_ego_frame(trajectory: np.ndarray, pose: np.ndarray, hz: float,
                        made_at_s: float) -> Plan:
    """A plan from an ego-frame trajectory (T, ≥2) made at world ``pose`` (x, y, yaw)."""
    traj = np.asarray(trajectory, float)
    x0, y0, yaw0 = (float(v) for v in pose[:3])
    c, s = np.cos(yaw0), np.sin(yaw0)
    xy = np.column_stack([x0 + traj[:, 0] * c - traj[:, 1] * s,
                          y0 + traj[:, 0] * s + traj[:, 1] * c])
    return Plan(np.array([x0, y0, yaw0]), xy, speeds_along(traj, hz), hz, made_at_s)


class PurePursuitTracker:
    """Turns a :class:`Plan` and the vehicle's state into highway-env controls."""

    def __init__(self, config: TrackerConfig = TrackerConfig(), wheelbase_m: float = 5.0):
        self.config = config
        self.wheelbase = wheelbase_m  # highway-env's bicycle model uses the vehicle length

    def controls(self, plan: Plan, x: float, y: float, yaw: float, speed: float,
                 now_s: float, dt: float) -> dict:
        """``{"steering", "acceleration"}`` in highway-env's convention (y down: the
        steering sign is flipped from the right-handed world frame)."""
        cfg = self.config
        path = np.vstack([plan.origin[None, :2], plan.xy])
        here = np.array([x, y])
        seg = np.diff(path, axis=0)
        seg_len = np.linalg.norm(seg, axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg_len)])
        if arc[-1] < 0.5:  # a plan that stays put: hold the heading
            target = here + np.array([np.cos(yaw), np.sin(yaw)])
        else:
            t = np.clip(((here - path[:-1]) * seg).sum(1) / np.maximum(seg_len**2, 1e-12), 0, 1)
            dist = np.linalg.norm(path[:-1] + t[:, None] * seg - here, axis=1)
            i = int(dist.argmin())
            s_here = arc[i] + t[i] * seg_len[i]
            s_target = s_here + max(cfg.lookahead_min_m, speed * cfg.lookahead_s)
            if s_target <= arc[-1]:
                target = np.array([np.interp(s_target, arc, path[:, 0]),
                                   np.interp(s_target, arc, path[:, 1])])
            else:  # past the end: extend along the last segment's direction
                last = seg[seg_len > 1e-6][-1]
                target = path[-1] + last / np.linalg.norm(last) * (s_target - arc[-1])
        dx, dy = target - here
        c, s = np.cos(yaw), np.sin(yaw)
        lx, ly = dx * c + dy * s, -dx * s + dy * c
        curvature = 2.0 * ly / max(lx * lx + ly * ly, 1e-6)
        # highway-env: heading rate = v sin(beta) / (L / 2), tan(beta) = tan(delta) / 2
        sin_beta = np.clip(curvature * self.wheelbase / 2.0, -0.99, 0.99)
        delta = float(np.arctan(2.0 * np.tan(np.arcsin(sin_beta))))
        steering = -float(np.clip(delta, -cfg.max_steering, cfg.max_steering))

        tau = now_s - plan.made_at_s
        times = np.arange(1, len(plan.speeds) + 1) / plan.hz
        v_ref = float(np.interp(tau + cfg.preview_s, np.concatenate([[0.0], times]),
                                np.concatenate([[plan.speeds[0]], plan.speeds])))
        slope = float(np.interp(tau, times[1:], np.diff(plan.speeds) * plan.hz)) \
            if len(times) > 1 else 0.0
        accel = slope + cfg.speed_gain * (v_ref - speed)
        accel = float(np.clip(accel, -cfg.max_brake, cfg.max_accel))
        accel = max(accel, -max(speed, 0.0) / dt)
        return {"steering": steering, "acceleration": accel}
