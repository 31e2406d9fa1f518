"""The meta-action deriver on hand-made trajectories."""

import numpy as np
import pytest

from vla.meta_action import MetaAction, derive_meta_action, is_consistent

HZ = 10
T = np.arange(1, 61) / HZ


def _straight(v0, a=0.0):
    speed = np.maximum(v0 + a * T, 0.0)
    x = np.cumsum(speed) / HZ
    return np.stack([x, np.zeros_like(x), np.zeros_like(x)], axis=1), v0


def test_constant_speed_is_keep_speed_keep_lane():
    traj, v0 = _straight(20.0)
    assert derive_meta_action(traj, v0) == MetaAction("keep_speed", "keep_lane")


def test_braking_to_a_stop_is_stop_and_mild_braking_is_decelerate():
    assert derive_meta_action(*_straight(8.0, -4.0)).longitudinal == "stop"
    assert derive_meta_action(*_straight(20.0, -1.0)).longitudinal == "decelerate"
    assert derive_meta_action(*_straight(10.0, 1.5)).longitudinal == "accelerate"


def test_lane_change_left_and_right():
    traj, v0 = _straight(20.0)
    shift = 3.6 / (1 + np.exp(-(T - 2.0) * 3))
    left = traj.copy()
    left[:, 1] = shift
    right = traj.copy()
    right[:, 1] = -shift
    assert derive_meta_action(left, v0).lateral == "lane_change_left"
    assert derive_meta_action(right, v0).lateral == "lane_change_right"


def test_turn_right_by_heading():
    radius, v = 15.0, 8.0
    angle = -np.minimum(v * T / radius, np.pi / 2)
    traj = np.stack([radius * np.sin(-angle), -radius * (1 - np.cos(angle)), angle], axis=1)
    assert derive_meta_action(traj, v).lateral == "turn_right"


def test_yield_is_consistent_with_decelerate_but_not_accelerate():
    assert is_consistent(MetaAction("yield", "keep_lane"),
                         MetaAction("decelerate", "keep_lane")) == (True, True)
    assert is_consistent(MetaAction("yield", "keep_lane"),
                         MetaAction("accelerate", "turn_left")) == (False, False)


def test_bad_trajectories_are_refused_clearly():
    traj, v0 = _straight(10.0)
    traj[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        derive_meta_action(traj, v0)
    with pytest.raises(ValueError, match="shape|array"):
        derive_meta_action(np.zeros(5), v0)
    with pytest.raises(ValueError, match="unknown longitudinal"):
        MetaAction("hover", "keep_lane")
