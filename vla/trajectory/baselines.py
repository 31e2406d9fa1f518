"""Kinematic baselines that read only the ego state at t0.

``constant_velocity``: straight on at the current speed. ``constant_acceleration``: straight
on with the current acceleration held, never reversing (the speed stops at 0).
"""

from __future__ import annotations

import numpy as np

from vla.trajectory.types import EgoState, TrajectorySpec

DEFAULT_SPEC = TrajectorySpec()


def constant_velocity(ego: EgoState, spec: TrajectorySpec = DEFAULT_SPEC) -> np.ndarray:
    t = spec.times
    return np.column_stack([ego.speed * t, np.zeros_like(t), np.zeros_like(t)])


def constant_acceleration(ego: EgoState, spec: TrajectorySpec = DEFAULT_SPEC) -> np.ndarray:
    t = spec.times
    if ego.accel < 0 and ego.speed > 0:
        t_stop = ego.speed / -ego.accel
        tc = np.minimum(t, t_stop)
    else:
        tc = t
    x = ego.speed * tc + 0.5 * ego.accel * tc**2
    return np.column_stack([x, np.zeros_like(t), np.zeros_like(t)])


BASELINES = {"constant-velocity": constant_velocity,
             "constant-acceleration": constant_acceleration}
