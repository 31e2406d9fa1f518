"""The trajectory data contract, the closed-form kinematics and the synthetic generator."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.analysis.synthetic_data import save_synthetic_dataset
from vla.trajectory.data import load_splits, read_spec
from vla.trajectory.kinematics import arc_pose, distance_travelled, rollout
from vla.trajectory.metrics import is_comfortable
from vla.trajectory.synthetic import SCENARIOS, generate
from vla.trajectory.types import EgoState, TrajectorySpec, as_trajectory


def test_ego_state_validates():
    assert EgoState(3.0).accel == 0.0
    with pytest.raises(ValueError, match="speed must be >= 0"):
        EgoState(-1.0)
    with pytest.raises(ValueError, match="finite"):
        EgoState(1.0, accel=float("nan"))
    with pytest.raises(TypeError, match="number"):
        EgoState("fast")  # type: ignore[arg-type]


def test_spec_and_trajectory_checks():
    spec = TrajectorySpec()
    assert spec.num_points == 60 and spec.times[0] == pytest.approx(0.1)
    assert spec.steps_per(2.0) == 5
    with pytest.raises(ValueError, match="rate_hz=3.0 must divide"):
        spec.steps_per(3.0)
    with pytest.raises(ValueError, match="whole number"):
        TrajectorySpec(hz=10.0, horizon_s=6.05)
    with pytest.raises(ValueError, match=r"shape \(T, 3\)"):
        as_trajectory(np.zeros((60, 2)))
    with pytest.raises(ValueError, match="expected 60 points"):
        as_trajectory(np.zeros((50, 3)), spec)
    with pytest.raises(ValueError, match="NaN"):
        as_trajectory(np.full((60, 3), np.nan), spec)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(v=st.floats(0, 35), a=st.floats(-6, 4), k=st.floats(-0.2, 0.2))
def test_closed_form_matches_fine_integration(v, a, k):
    """The exact arc rollout agrees with a 1 ms Euler integration of the same unicycle."""
    s, v_end = distance_travelled(np.array(v), np.array(a), np.array(0.5))
    x, y, th = arc_pose(0.0, 0.0, 0.0, k, s)
    dt, xe, ye, the, ve = 1e-4, 0.0, 0.0, 0.0, v
    for _ in range(5000):
        v_next = max(ve + a * dt, 0.0)
        vm = 0.5 * (ve + v_next)
        xe += vm * np.cos(the + 0.5 * k * vm * dt) * dt
        ye += vm * np.sin(the + 0.5 * k * vm * dt) * dt
        the += k * vm * dt
        ve = v_next
    assert abs(float(x) - xe) < 1e-3 and abs(float(y) - ye) < 1e-3
    assert float(v_end) == pytest.approx(ve, abs=1e-6)
    assert float(th) == pytest.approx(the, abs=1e-4)


def test_rollout_never_reverses():
    traj = rollout(5.0, np.full(12, -4.0), np.zeros(12), 5, 0.1)
    assert np.all(np.diff(traj[:, 0]) >= -1e-12)
    assert traj[-1, 0] == pytest.approx(25.0 / 8.0)  # v^2 / (2 |a|)


def test_generator_covers_scenarios_and_is_plausible():
    trajs, egos, kinds = generate(350, seed=3)
    assert trajs.shape == (350, 60, 3) and np.all(np.isfinite(trajs))
    assert set(kinds) == set(SCENARIOS)
    speeds = np.linalg.norm(np.diff(trajs[..., :2], axis=1), axis=-1) * 10
    assert speeds.max() <= 35.5
    stopped = [i for i, k in enumerate(kinds) if k == "stopped"]
    assert np.all(trajs[stopped] == 0) and all(egos[i].speed == 0 for i in stopped)
    # x never goes backwards along the path: the projected step is positive or zero
    steps = np.diff(np.concatenate([np.zeros((350, 1, 3)), trajs], axis=1), axis=1)
    along = steps[..., 0] * np.cos(trajs[..., 2]) + steps[..., 1] * np.sin(trajs[..., 2])
    assert along.min() > -1e-3
    comfortable = np.mean([is_comfortable(t, e, 10.0) for t, e in zip(trajs, egos, strict=True)])
    assert comfortable > 0.9


def test_generator_is_deterministic():
    a, _, ka = generate(20, seed=5)
    b, _, kb = generate(20, seed=5)
    assert np.array_equal(a, b) and ka == kb


def test_synthetic_dataset_round_trips_through_disk(tmp_path):
    out = save_synthetic_dataset(tmp_path / "ds", 50, seed=1)
    assert json.loads((out / "vla_data.json").read_text())["future_hz"] == 10.0
    assert read_spec(out) == TrajectorySpec(10.0, 6.0)
    spec, splits = load_splits(out, ("train", "validation", "test"))
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [40, 5, 5]
    assert splits["train"].trajectories.shape == (40, 60, 3)
    assert isinstance(splits["test"].egos[0], EgoState)
    with pytest.raises(ValueError, match="no split 'dev'"):
        load_splits(out, ("dev",))
