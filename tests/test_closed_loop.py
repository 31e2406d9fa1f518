"""Closed loop in the real highway-env simulator: metrics come from what the car did.

The model-through-vLLM episode is in test_serving.py (it shares that module's server).
"""

import json

import numpy as np
import pytest

from vla.evaluation import closed_loop as cl
from vla.evaluation.scenarios import ScenarioEntry, ScenarioSet, load_scenario_set

LEAD_BRAKE_SEED = 1016164991  # constant speed straight on ends in the braking lead vehicle


def _config(duration_s=12.0, **kwargs):
    sset = ScenarioSet("test", (ScenarioEntry("lead_brake", traffic=6, seeds=(LEAD_BRAKE_SEED,)),),
                       duration_s=duration_s)
    return cl.ClosedLoopConfig(sset, **kwargs)


def test_driving_into_the_lead_vehicle_scores_collision_and_zero_pdms(tmp_path):
    config = _config(save_frames=True, gif=True)
    result = cl.evaluate_closed_loop([cl.ConstantVelocityPlanner()], config, episodes=1, seed=0,
                                     trace_path=tmp_path / "traces.jsonl", progress=False)
    cv = result["per_episode"]["constant-velocity"][0]
    expert = result["per_episode"]["expert"][0]
    assert cv["collision"] == 1 and cv["pdms"] == 0.0
    assert cv["min_ttc_s"] == 0.0 and cv["ttc_violations"] > 0
    assert cv["seconds_simulated"] < 10.0  # the episode ended at the crash
    assert expert["collision"] == 0 and expert["off_road"] == 0 and expert["progress"] == 1.0
    assert expert["pdms"] > 0.5
    assert result["planners"]["constant-velocity"]["collision_rate"] == 1.0
    records = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    episodes = [r for r in records if r["kind"] == "closed_loop_episode"]
    decisions = [r for r in records if r["kind"] == "closed_loop"]
    assert {r["planner"] for r in episodes} == {"expert", "constant-velocity"}
    assert len(decisions) == cv["decisions"] > 0
    for r in decisions:  # each decision's camera images exist beside the trace file
        assert len(r["images"]) == 3 and all((tmp_path / p).is_file() for p in r["images"])
        assert r["derived_meta_action"]["longitudinal"] == "keep_speed"
    assert all((tmp_path / r["gif"]).is_file() for r in episodes)


def test_the_simulated_path_is_what_the_tracker_was_asked_to_follow():
    """Constant velocity on a straight highway: the car keeps its speed and heading."""
    episode = cl.drive_episode(*_config().scenarios.episodes(1, 0)[0],
                               cl.ConstantVelocityPlanner(), _config())
    states = episode.ego_states()
    before_crash = states[: len(states) - 15]
    assert np.ptp(before_crash[:, 3]) < 0.5  # speed, m/s
    assert np.ptp(before_crash[:, 2]) < 0.02  # yaw, rad


def test_tracker_follows_a_curve():
    """Pure pursuit on highway-env's own bicycle model follows a 40 m-radius arc."""
    from highway_env.vehicle.kinematics import Vehicle

    from vla.sim.tracker import PurePursuitTracker, plan_from_ego_frame

    radius, speed, hz = 40.0, 10.0, 10.0
    t = np.arange(1, 61) / hz
    angle = speed * t / radius
    arc = np.column_stack([radius * np.sin(angle), radius * (1 - np.cos(angle)), angle])
    plan = plan_from_ego_frame(arc, np.zeros(3), hz, 0.0)
    car = Vehicle(None, [0.0, 0.0], heading=0.0, speed=speed)
    tracker = PurePursuitTracker(wheelbase_m=float(car.LENGTH))
    errors = []
    for k in range(50):
        x, y = car.position
        car.act(tracker.controls(plan, x, -y, -car.heading, car.speed, k / hz, 1 / hz))
        car.step(1 / hz)
        point = np.array([car.position[0], -car.position[1]])
        errors.append(abs(np.linalg.norm(point - [0.0, radius]) - radius))
    assert max(errors[10:]) < 0.5
    assert abs(car.speed - speed) < 0.3


def test_scenario_files_ship_and_bad_ones_are_refused(tmp_path):
    demo = load_scenario_set("eval/scenarios/demo.yaml")
    assert demo.name == "demo" and len(demo.episodes(6, 0)) == 6
    assert demo.episodes(6, 0) == demo.episodes(6, 0)
    load_scenario_set("eval/scenarios/mixed.yaml")
    bad = tmp_path / "bad.yaml"
    for text, message in (("scenarios: [{event: flying}]", "unknown event"),
                          ("scenarios: [{event: junction, road: highway}]", "happens on road"),
                          ("speed: 3\nscenarios: []", "unknown keys"),
                          ("scenarios: [{event: cut_in}]\nwarmup_s: 1.0", "warmup_s"),
                          ("scenarios: [", "not valid YAML")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_scenario_set(bad)
