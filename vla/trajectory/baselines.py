"""Kinematic baselines that read only the ego state at t0.

``constant_velocity``: straight on at the current speed. ``constant_acceleration``: straight
on with the current acceleration held, never reversing (the speed stops at 0).
``damped_acceleration``: straight on with the current acceleration fading out
(``a(t) = a0 exp(-t / tau)``, tau = 1 s), never reversing: the prior under the default
trajectory codec's tokens, i.e. what the model writes with every token at entry 0.
"""

from __future__ import annotations

import numpy as np

from vla.trajectory.types import EgoState, TrajectorySpec, ego_state_of

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


def damped_acceleration(ego: EgoState, spec: TrajectorySpec = DEFAULT_SPEC,
                        tau_s: float = 1.0) -> np.ndarray:
    t = spec.times
    x = ego.speed * t + ego.accel * tau_s * (t - tau_s * (1.0 - np.exp(-t / tau_s)))
    x = np.maximum.accumulate(np.maximum(x, 0.0))  # never reverse: stop where it would
    return np.column_stack([x, np.zeros_like(t), np.zeros_like(t)])


BASELINES = {"constant-velocity": constant_velocity,
             "constant-acceleration": constant_acceleration,
             "damped-acceleration": damped_acceleration}


def sample_spec(sample: dict) -> TrajectorySpec:
    """The horizon of a data-set row's logged future (10 Hz); the default one where it has
    none (closed loop)."""
    future = sample.get("future")
    return TrajectorySpec() if future is None else TrajectorySpec(
        hz=10.0, horizon_s=len(future) / 10.0)


def sample_prior(sample: dict) -> np.ndarray:
    """The trajectory prior of a data-set row: damped acceleration from its speed,
    acceleration and yaw rate, over its horizon (what the trajectory tokens are offsets from
    and what the blind-prior row drives)."""
    return damped_acceleration(ego_state_of(sample), sample_spec(sample))
