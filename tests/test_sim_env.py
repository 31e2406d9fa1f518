"""The driving environment: reset a scenario, step plans through the tracker, or let the
simulator's driver drive."""

import io

import numpy as np
import pytest
from PIL import Image

from vla.reference import constant_velocity_plan
from vla.sim.env import DrivingEnv, EnvConfig
from vla.sim.observation import SampleConfig
from vla.sim.recipes import ScenarioSpec

LEAD_BRAKE_SEED = 1016164991  # constant speed straight on ends in the braking lead vehicle
SPEC = ScenarioSpec("lead_brake", duration_s=10.0, traffic=6)
SMALL = SampleConfig(cameras=("front_left", "front"), image_width=56, image_height=28)


def _env(**kwargs) -> DrivingEnv:
    return DrivingEnv(EnvConfig(sample=SMALL, **kwargs))


def _drive_constant_velocity(env: DrivingEnv) -> tuple[list[int], object]:
    """Constant-velocity plans from every observation until the episode ends."""
    obs = env.reset(SPEC, LEAD_BRAKE_SEED)
    steps = []
    while obs is not None:
        steps.append(obs.step)
        obs, status = env.step(constant_velocity_plan(obs.view))
    return steps, status


def test_reset_gives_the_first_decisions_observation():
    with _env(warmup_s=2.5) as env:
        obs = env.reset(SPEC, LEAD_BRAKE_SEED)
        assert obs.step == env.warmup_steps == 25 and obs.time_s == pytest.approx(2.5)
        assert not env.status.done and env.status.step == 25
        view = obs.view
        assert view["camera_names"] == ["front_left", "front"] * SMALL.frames
        assert view["frame_times"] == [-0.5, -0.5, 0.0, 0.0]
        current = obs.current_images()
        assert len(current) == 2 and current == view["images"][-2:]
        image = Image.open(io.BytesIO(current[0]["bytes"]))
        assert image.size == (56, 28)
        assert len(view["history"]) == SMALL.steps(SMALL.history_s) + 1
        assert view["ego_speed"] > 0 and view["command"] == "follow_road"
        log = env.log()
        assert log.state.shape[1] == 26  # steps 0..25
        np.testing.assert_array_equal(obs.pose, log.state[log.ego_id, 25, :3])


def test_constant_velocity_plans_drive_into_the_braking_lead_deterministically():
    runs = []
    for _ in range(2):
        with _env() as env:
            steps, status = _drive_constant_velocity(env)
            runs.append((steps, status, env.log().state))
            with pytest.raises(RuntimeError, match="episode ended"):
                env.step()
    (steps, status, states), (steps2, status2, states2) = runs
    assert steps == steps2 and status == status2
    np.testing.assert_array_equal(states, states2)
    assert steps[:3] == [20, 25, 30]  # a decision every 0.5 s after the 2 s warm-up
    assert status.done and status.collision and not status.off_road
    assert status.step < 100 and states.shape[1] == status.step + 1


def test_self_driving_mode_is_the_simulators_driver_without_a_plan():
    """The expert mode drives exactly as the data recipe's episode of the same seed."""
    from vla.sim.episode import run_episode

    with _env() as env:
        assert env.reset(SPEC, LEAD_BRAKE_SEED, self_driving=True) is None
        with pytest.raises(ValueError, match="self-driving"):
            env.step(np.zeros((60, 3)))
        while not env.status.done:
            obs, status = env.step()
            assert obs is None
        assert status.step == 100 and not status.collision and not status.off_road
        assert env.plan is None
        np.testing.assert_array_equal(env.log().state, run_episode(SPEC, LEAD_BRAKE_SEED).state)


def test_a_bad_plan_is_refused_with_a_clear_error():
    with _env() as env:
        with pytest.raises(RuntimeError, match="reset"):
            env.step(np.zeros((60, 3)))
        env.reset(SPEC, LEAD_BRAKE_SEED)
        with pytest.raises(ValueError, match="no plan to follow yet"):
            env.step()
        for plan in (np.zeros((60, 4)), np.zeros(60), np.zeros((0, 3))):
            with pytest.raises(ValueError, match=r"\(T, 3\).*got shape"):
                env.step(plan)
        bad = np.zeros((60, 3))
        bad[7, 1] = np.nan
        with pytest.raises(ValueError, match=r"finite; rows \[7\]"):
            env.step(bad)
        assert env.status.step == env.warmup_steps  # nothing was simulated
        _, status = env.step(np.zeros((60, 2)))  # x, y only: stand still
        assert status.step == env.warmup_steps + env.decision_steps


def test_env_config_is_validated():
    with pytest.raises(ValueError, match="history"):
        EnvConfig(warmup_s=1.0)
    with pytest.raises(ValueError, match="multiple"):
        EnvConfig(decision_every_s=0.25)
    with pytest.raises(ValueError, match="trajectory_hz"):
        EnvConfig(trajectory_hz=3.0)
    with pytest.raises(ValueError, match="warm-up"):
        DrivingEnv(EnvConfig(warmup_s=10.0)).reset(SPEC, 0)


def test_an_episode_does_not_depend_on_the_episodes_run_before_it():
    """highway-env's intersection sets IDM settings on the vehicle class; every scenario
    starts from the defaults again, so a highway episode is the same before and after a
    junction episode in the same process (as the data builder's workers run them)."""
    from vla.sim.episode import run_episode

    highway = ScenarioSpec("slower_lead", duration_s=10.0, traffic=6)
    first = run_episode(highway, 11).state
    run_episode(ScenarioSpec("junction", duration_s=10.0), 12)
    again = run_episode(highway, 11).state
    np.testing.assert_array_equal(np.nan_to_num(first), np.nan_to_num(again))
