"""Closed loop in the real highway-env simulator: metrics come from what the car did.

The model-through-vLLM episode is in test_serving.py (it shares that module's server).
"""

import json

import numpy as np
import pytest

from vla.evaluation import closed_loop as cl
from vla.evaluation.closed_loop_episode import drive_episode
from vla.evaluation.expert_choice import expert_choice
from vla.evaluation.scenarios import ScenarioEntry, ScenarioSet, load_scenario_set
from vla.sim.observation import SampleConfig

LEAD_BRAKE_SEED = 1016164991  # constant speed straight on ends in the braking lead vehicle


def _config(duration_s=12.0, **kwargs):
    sset = ScenarioSet("test", (ScenarioEntry("lead_brake", traffic=6, seeds=(LEAD_BRAKE_SEED,)),),
                       duration_s=duration_s)
    return cl.ClosedLoopConfig(sset, **kwargs)


@pytest.fixture(scope="module")
def lead_brake(tmp_path_factory):
    """Every built-in planner on the lead-brake seed, traced with frames and GIFs."""
    out = tmp_path_factory.mktemp("lead_brake")
    config = _config(duration_s=10.0, save_frames=True, gif=True)
    planners = [cl.make_planner(name)
                for name in ("constant-velocity", "damped-prior", "expert-tracked")]
    result = cl.evaluate_closed_loop(planners, config, episodes=1, seed=0,
                                     trace_path=out / "traces.jsonl", progress=False)
    records = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    return result, records, out


@pytest.mark.sim
def test_driving_into_the_lead_vehicle_scores_collision_and_a_zero_score(lead_brake):
    result, records, out = lead_brake
    cv = result["per_episode"]["constant-velocity"][0]
    expert = result["per_episode"]["expert"][0]
    assert cv["collision"] == 1 and cv["pdms_like"] == 0.0
    assert cv["min_ttc_s"] == 0.0 and cv["ttc_violations"] > 0
    assert cv["seconds_simulated"] < 8.0  # the episode ended at the crash
    assert expert["collision"] == 0 and expert["off_road"] == 0 and expert["progress"] == 1.0
    assert expert["pdms_like"] > 0.5
    summary = result["planners"]["constant-velocity"]
    assert summary["collision_rate"] == 1.0 and summary["collision_rate_ci95"] == [1.0, 1.0]
    assert summary["per_event"]["lead_brake"]["collision_rate"] == 1.0
    assert "decision_match_rate" not in summary and "decision_match_rate" not in cv
    episodes = [r for r in records if r["kind"] == "closed_loop_episode"]
    decisions = [r for r in records if r["kind"] == "closed_loop"
                 and r["planner"] == "constant-velocity"]
    assert [r["planner"] for r in episodes] == ["expert", "constant-velocity", "damped-prior",
                                                "expert-tracked"]
    assert len(decisions) == cv["decisions"] > 0
    for r in decisions:  # each decision's camera images exist beside the trace file
        # the current frame of each camera of the default rig
        assert len(r["images"]) == len(SampleConfig().cameras) \
            and all((out / p).is_file() for p in r["images"])
        assert r["derived_meta_action"]["longitudinal"] == "keep_speed"
        assert r["expert_meta_action"]["longitudinal"] in ("decelerate", "follow", "stop")
        assert r["decision_correct_lon"] is (r["expert_meta_action"]["longitudinal"] == "follow")
    assert all((out / r["gif"]).is_file() for r in episodes)


@pytest.mark.sim
def test_damped_prior_and_expert_tracked_drive_through_the_tracker(lead_brake):
    """The damped prior drives its plan into the braking lead vehicle like constant velocity;
    the expert's own future, through the same tracker, brakes in time."""
    from vla.policy import one
    from vla.trajectory.baselines import damped_acceleration
    from vla.trajectory.types import EgoState

    result, records, _ = lead_brake
    prior = result["per_episode"]["damped-prior"][0]
    tracked = result["per_episode"]["expert-tracked"][0]
    assert prior["decisions"] > 0 and prior["collision"] == 1
    assert tracked["collision"] == 0 and tracked["off_road"] == 0
    assert tracked["seconds_simulated"] == 8.0 and tracked["progress"] > 0.9
    assert tracked["pdms_like"] >= result["per_episode"]["constant-velocity"][0]["pdms_like"]
    sample = {"ego_speed": 20.0, "ego_accel": -1.5}
    np.testing.assert_allclose(one(cl.make_planner("damped-prior"), sample).trajectory,
                               damped_acceleration(EgoState(20.0, -1.5)))
    # at the first decision the ego has never left the driver: the plan is its own future
    first = next(r for r in records if r["planner"] == "expert-tracked")
    assert first["decision_correct_lon"] and first["decision_correct_lat"]


@pytest.mark.sim
def test_decision_accuracy_against_the_expert_choice(lead_brake):
    """Constant velocity keeps its speed where the expert, from the same state, would brake:
    a blind planner no longer scores ~1 by following its own plan."""
    result = lead_brake[0]
    cv = result["planners"]["constant-velocity"]
    tracked = result["planners"]["expert-tracked"]
    assert cv["decision_accuracy_lon"] < 0.5 < 0.9 <= tracked["decision_accuracy_lon"]
    assert tracked["decision_accuracy_lat"] >= 0.9
    assert result["planners"]["expert"]["decision_accuracy_lon"] is None  # it writes nothing
    lo, hi = tracked["pdms_like_ci95"]
    assert lo <= tracked["pdms_like"] <= hi
    paired = cv["vs_damped_prior"]
    assert set(paired) == {"pdms_like_diff", "pdms_like_diff_ci95", "collision_rate_diff",
                           "collision_rate_diff_ci95"}
    assert "vs_damped_prior" not in result["planners"]["damped-prior"]


def test_asking_the_expert_changes_nothing_in_the_episode():
    """The expert's choice runs on a copy (scripted event included): the live episode goes on
    exactly as if it had not been asked, whether the driver or a tracker drives the ego."""
    from vla.sim.driver import TrackedVehicle
    from vla.sim.episode import seed_everything
    from vla.sim.recipes import ScenarioSpec
    from vla.sim.world import setup_scenario

    def run(ask: bool):
        spec = ScenarioSpec("lead_brake", duration_s=12.0, traffic=6)
        seed_everything(LEAD_BRAKE_SEED)
        env, ego, event = setup_scenario(spec, LEAD_BRAKE_SEED)
        ego.__class__ = TrackedVehicle
        choices = []
        for k in range(1, 81):
            if k == 26:  # a planner takes over: straight on at constant speed
                ego.controls = {"steering": 0.0, "acceleration": 0.0}
            if ask and k in (21, 31):  # before the lead brakes (3 to 6.5 s); the copy sees it
                choices.append(expert_choice(spec, LEAD_BRAKE_SEED, env.road, ego, event,
                                             k - 1, 60))
            event(k * 0.1)
            env.road.act()
            env.road.step(0.1)
        states = np.array([[*v.position, v.heading, v.speed] for v in env.road.vehicles])
        return states, len(ego.records), choices

    asked, n_asked, choices = run(True)
    plain, n_plain, _ = run(False)
    np.testing.assert_array_equal(asked, plain)
    assert n_asked == n_plain
    for choice in choices:
        assert choice.meta_action.longitudinal in ("decelerate", "stop")  # the brake to come
        assert choice.trajectory.shape == (60, 3)


@pytest.mark.sim
def test_parallel_workers_give_the_same_results(tmp_path):
    sset = ScenarioSet("two", (ScenarioEntry("lead_brake", traffic=6, seeds=(LEAD_BRAKE_SEED,)),
                               ScenarioEntry("cut_in", traffic=6, seeds=(22,))),
                      duration_s=10.0, decision_every_s=2.0)
    config = cl.ClosedLoopConfig(sset, save_frames=False)
    results, orders, traces = [], [], []
    for workers in (1, 2):
        calls = []
        path = tmp_path / f"w{workers}.jsonl"
        results.append(cl.evaluate_closed_loop(
            [cl.make_planner("damped-prior")], config, episodes=2, seed=0, trace_path=path,
            progress=False, workers=workers,
            on_episode=lambda name, row, calls=calls: calls.append((name, row["seed"]))))
        orders.append(calls)
        traces.append([{k: v for k, v in json.loads(line).items() if k != "time"}
                       for line in path.read_text().splitlines()])
    one, two = results
    assert two["workers"] == 2 and one["episodes"] == two["episodes"] == 2
    assert one["per_episode"] == two["per_episode"]
    assert one["planners"] == two["planners"]
    assert orders[0] == orders[1] and traces[0] == traces[1]
    assert set(two["seconds_per_episode"]) == {"expert", "damped-prior"}


def test_planners_that_can_run_in_workers_pickle():
    import pickle

    from vla.reference import TrajectoryPolicy
    from vla.serving.client import EndpointPolicy, VLAClient

    model = EndpointPolicy(VLAClient("http://127.0.0.1:1", "vla", None, None), name="model")
    assert cl.runs_in_workers(model)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.name == "model" and copy.client.url == model.client.url

    class InProcess:  # a policy that does not say it runs in workers (transformers)
        name = "model"

    assert not cl.runs_in_workers(InProcess())
    assert not cl.runs_in_workers(TrajectoryPolicy("local", lambda sample: None))
    for name in ("expert", *cl.TRACKED_REFERENCE_PLANNERS):
        planner = pickle.loads(pickle.dumps(cl.make_planner(name)))
        assert planner.name == name and cl.runs_in_workers(planner)
    with pytest.raises(ValueError, match="unknown planner"):
        cl.make_planner("flying")


def test_closed_loop_cli_planners():
    from argparse import Namespace

    from vla.evaluation.cli import closed_loop_planners

    def names(**kwargs):
        args = Namespace(**{"model": None, "endpoint": None, "baselines": False, **kwargs})
        return [p.name for p in closed_loop_planners(args)]

    assert names(planner="damped-prior") == ["damped-prior"]
    assert names(planner="expert") == []  # the expert always drives
    assert names(planner="expert-tracked", baselines=True) == [
        "expert-tracked", "damped-prior", "constant-velocity"]


def test_bootstrap_ci():
    from vla.evaluation.driving_metrics import bootstrap_ci

    assert bootstrap_ci([0, 0, 0, 0]) == (0.0, 0.0)
    assert bootstrap_ci([]) is None and bootstrap_ci([None]) is None
    assert bootstrap_ci([1.0]) == (1.0, 1.0)
    few = [1] * 3 + [0] * 7
    lo, hi = bootstrap_ci(few, seed=3)
    assert 0 <= lo < 0.3 < hi <= 1
    assert bootstrap_ci(few, seed=3) == (lo, hi)  # seeded
    lo_many, hi_many = bootstrap_ci(few * 10, seed=3)
    assert lo_many < 0.3 < hi_many and hi_many - lo_many < (hi - lo) / 2
    scores = [0.0, 0.83, 0.74, 0.0, 0.83, 0.42]  # a PDMS-like mixture
    lo, hi = bootstrap_ci(scores, resamples=2000, confidence=0.9)
    assert lo < np.mean(scores) < hi
    with pytest.raises(ValueError):
        bootstrap_ci(few, confidence=1.5)


def test_the_simulated_path_is_what_the_tracker_was_asked_to_follow():
    """Constant velocity on a straight highway: the car keeps its speed and heading."""
    episode = drive_episode(*_config().scenarios.episodes(1, 0)[0],
                            cl.make_planner("constant-velocity"), _config())
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
    from collections import Counter

    from vla.sim.recipes import load_recipe

    events = {spec.event for spec, _ in load_recipe("default").mix}
    demo = load_scenario_set("eval/scenarios/demo.yaml")
    assert demo.name == "demo" and len(demo.episodes(6, 0)) == 6
    assert demo.episodes(6, 0) == demo.episodes(6, 0)
    for name, least in (("demo", 2), ("benchmark", 5)):
        sset = load_scenario_set(f"eval/scenarios/{name}.yaml")
        runs = sset.episodes(None, 0)
        assert len(runs) == sset.size
        counts = Counter(spec.event for spec, _ in runs)
        assert set(counts) == events and min(counts.values()) >= least, (name, counts)
        first = Counter(spec.event for spec, _ in runs[:len(events)])  # entries take turns
        assert set(first) == events
    assert demo.episodes(1, 0)[0][1] == LEAD_BRAKE_SEED
    load_scenario_set("eval/scenarios/mixed.yaml")
    bad = tmp_path / "bad.yaml"
    for text, message in (("scenarios: [{event: flying}]", "unknown event"),
                          ("scenarios: [{event: junction, road: highway}]", "happens on road"),
                          ("speed: 3\nscenarios: []", "unknown keys"),
                          ("scenarios: [{event: cut_in}]\nwarmup_s: 1.0", "warmup_s"),
                          ("scenarios: [{event: cut_in}]\nepisodes_per_scenario: 0",
                           "episodes_per_scenario"),
                          ("scenarios: [{event: cut_in}]\nepisodes_per_scenario: 2.5",
                           "episodes_per_scenario"),
                          ("scenarios: [", "not valid YAML")):
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_scenario_set(bad)
