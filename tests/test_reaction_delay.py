"""The simulated driver's reaction delay, the onset keyframes, and how often the prompt's own
kinematics give the decision away."""

import numpy as np
import pytest
from datasets import Dataset

from vla.data.labels import make_label
from vla.data.samples import keyframe_labels
from vla.data.stats import prior_agreement
from vla.evaluation.scenarios import load_scenario_set
from vla.sim.episode import run_episode
from vla.sim.observation import SampleConfig
from vla.sim.recipes import ScenarioSpec, load_recipe


@pytest.mark.sim
@pytest.mark.parametrize("delay_s", [0.0, 1.0])
def test_the_driver_applies_what_it_decided_one_delay_before(delay_s):
    log = run_episode(ScenarioSpec("lead_brake", duration_s=12.0, traffic=4,
                                   reaction_delay_s=delay_s), seed=5)
    steps = int(round(delay_s * 10))
    commanded = np.array([r["commanded_accel"] for r in log.records])
    applied = np.array([r["applied_accel"] for r in log.records])
    speeds = log.state[log.ego_id, :len(applied), 3]
    moving = speeds[steps:] > 1.0  # away from the zero-speed limit on braking
    assert moving.sum() > 50
    np.testing.assert_allclose(applied[steps:][moving],
                               commanded[:len(commanded) - steps][moving], atol=1e-9)
    if steps:
        # the decision really changes somewhere, so the delay is visible in the record
        assert np.abs(applied - commanded).max() > 0.5
        # the first decision stands in for the ones before the episode began
        np.testing.assert_allclose(applied[:steps], commanded[0])


@pytest.mark.sim
def test_onset_keyframes_sit_at_the_first_step_of_a_new_decision():
    log = run_episode(ScenarioSpec("lead_brake", duration_s=16.0, traffic=4,
                                   reaction_delay_s=1.0), seed=4)
    config = SampleConfig(cameras=("front",), image_width=56, image_height=56, topdown=False)
    labels = keyframe_labels(log, config)
    every = config.steps(config.keyframe_every_s)
    start = config.steps(config.history_s)
    extra = [k for k in labels if (k - start) % every]
    assert len(extra) >= 3, "this lead-brake episode changes its decision between keyframes"
    horizon = config.steps(config.horizon_s)
    for k in extra:
        before = start + (k - start) // every * every  # the regular keyframe before it
        assert labels[k].decision != labels[before].decision
        assert make_label(log, k - 1, horizon).decision == labels[before].decision


def _row(accel: float, label: str, scenario: str) -> dict:
    return {"decision_lon": label, "future": [[0.0, 0.0, 0.0]] * 60, "ego_speed": 15.0,
            "ego_accel": accel, "ego_yaw_rate": 0.0, "scenario": scenario}


def test_prior_agreement_counts_labels_the_ego_motion_already_shows():
    split = Dataset.from_list([
        _row(-4.0, "decelerate", "lead_brake"),  # braking already: the prior says decelerate
        _row(0.0, "decelerate", "lead_brake"),  # not yet: the prior says keep speed
        _row(0.0, "follow", "cut_in"),  # keep speed is compatible with follow, not equal
        _row(0.0, "keep_speed", "free_cruise"),
    ])
    out = prior_agreement(split)
    assert out["events"] == {"samples": 3, "prior_equal_lon": round(1 / 3, 4),
                             "prior_compatible_lon": round(2 / 3, 4)}
    assert out["free"] == {"samples": 1, "prior_equal_lon": 1.0, "prior_compatible_lon": 1.0}
    assert out["all"]["samples"] == 4


def test_the_delay_is_a_recipe_and_scenario_set_setting(tmp_path):
    assert load_recipe("default").mix[0][0].reaction_delay_s == 1.0
    assert load_recipe("default").as_dict()["reaction_delay_s"] == 1.0
    assert load_scenario_set("demo").episodes(1, 0)[0][0].reaction_delay_s == 1.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("reaction_delay_s: 0.25\nevents: {lead_brake: 1}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*reaction_delay_s must be a multiple"):
        load_recipe(bad)
