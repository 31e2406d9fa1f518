"""Reasoning checks: grounding on observable facts, the decision stated in words, and whether
the stated situation admits the meta-action; then the same on every label of a built data set
and the reward audit's verdicts on it."""

import json

import pytest

from vla.meta_action import MetaAction
from vla.reasoning import (
    claimed_facts,
    coherence,
    grounding,
    situation_admits,
    stated_decision,
)
from vla.reference import FIXED_SENTENCE


def _sample(facts_per_component, lon="decelerate", lat="keep_lane"):
    return {"sample_id": "s", "decision_lon": lon, "decision_lat": lat,
            "critical": json.dumps([{"kind": "agent", "facts": f} for f in facts_per_component])}


def test_facts_are_read_from_the_situation_not_the_decision():
    text = ("The lead car 31 m ahead is braking, brake lights on in frame 2: the gap shrank "
            "from 31 m to 24 m, so decelerate and turn left.")
    assert claimed_facts(text) == {"lead", "braking"}  # "turn left" is the decision
    assert stated_decision(text) == ("decelerate", "turn_left")
    assert claimed_facts("A car from the left lane is cutting in 12 m ahead, so follow it and "
                         "keep the lane.") == {"cutting_in", "left"}


def test_grounding_rewards_precision_as_well_as_recall():
    sample = _sample([["lead", "braking"]])
    right = grounding("The lead car 30 m ahead is braking, so decelerate and keep the lane.",
                      sample)
    assert right.value == 1.0 and right.precision == 1.0 and right.recall == 1.0
    half = grounding("The lead car is 30 m ahead, so decelerate and keep the lane.", sample)
    assert half.precision == 1.0 and half.recall == 0.5 and 0.5 < half.value < 1.0
    everything = grounding(f"{FIXED_SENTENCE}, so decelerate and keep the lane.", sample)
    assert everything.recall == 1.0 and everything.value < 0.3
    assert grounding("The road is empty, so decelerate and keep the lane.", sample).value == 0.0
    ids = grounding("id 1 id 2 id 3 id 7, so decelerate and keep the lane.", sample)
    assert ids.value == 0.0  # agent ids are not facts the inputs show
    with pytest.raises(ValueError, match="rebuild"):
        grounding("x", {"sample_id": "old", "critical": json.dumps([{"kind": "lane"}])})


def test_words_that_contradict_the_meta_action_are_caught():
    text = ("The lane ahead is stopped in our 9 m/s (gap 109 m in frame 1, so keep speed and "
            "keep the lane.")
    assert coherence(text, MetaAction("accelerate", "turn_left"))["states_meta_action"] is False
    assert coherence(text, MetaAction("keep_speed", "keep_lane"))["states_meta_action"] is True
    # the labels word follow + lane change as "keep speed and change lane"
    follow = "The car ahead is slower, so keep speed and change lane to the left."
    assert coherence(follow, MetaAction("follow", "lane_change_left"))["states_meta_action"]
    assert not coherence("The lane ahead is clear.", MetaAction("keep_speed", "keep_lane"))[
        "states_meta_action"]  # states no decision


@pytest.mark.parametrize("facts, meta, admitted", [
    ({"lead", "stopped"}, ("keep_speed", "keep_lane"), False),   # drives on into it
    ({"lead", "stopped"}, ("accelerate", "keep_lane"), False),
    ({"lead", "stopped"}, ("stop", "keep_lane"), True),
    ({"lead", "stopped"}, ("keep_speed", "lane_change_left"), True),  # goes round it
    ({"lead", "braking"}, ("decelerate", "keep_lane"), True),
    ({"lead", "braking"}, ("accelerate", "keep_lane"), False),
    ({"priority", "junction"}, ("yield", "keep_lane"), True),
    ({"priority", "junction"}, ("accelerate", "keep_lane"), False),
    ({"clear"}, ("follow", "keep_lane"), False),                  # nothing to follow
    ({"clear"}, ("yield", "keep_lane"), False),                   # nobody to yield to
    ({"clear"}, ("accelerate", "keep_lane"), True),
    ({"lead", "slower", "room_left"}, ("keep_speed", "lane_change_right"), False),
    ({"lead", "slower", "room_left"}, ("keep_speed", "lane_change_left"), True),
    ({"route_left", "junction", "clear"}, ("keep_speed", "turn_right"), False),
    (set(), ("keep_speed", "keep_lane"), False),                  # states no situation
])
def test_situation_admits_follows_the_labels_table(facts, meta, admitted):
    assert situation_admits(facts, MetaAction(*meta)) is admitted


@pytest.fixture(scope="module")
def all_samples(small_data_dir):
    from vla.data.build import load_dataset_dir

    dataset, _ = load_dataset_dir(small_data_dir)
    return [row for split in dataset.values() for row in split]


def test_every_label_is_grounded_and_coherent(all_samples):
    from vla.metrics import decision_metrics
    from vla.reference import label_decision

    assert all_samples
    for sample in all_samples:
        m = decision_metrics(label_decision(sample), sample)
        assert m["grounding"] == 1.0, (sample["reasoning"], sample["critical"])
        assert m["states_meta_action"] == 1.0, sample["reasoning"]
        assert m["situation_admits"] == 1.0, (sample["reasoning"], sample["decision_lon"],
                                              sample["decision_lat"])
        assert "id " not in sample["reasoning"] and "target" not in sample["reasoning"]


def test_reward_audit_verdicts(all_samples):
    """No blind or scene-independent completion beats the label; this fails if a reward
    change reopens a hole (a reward that a blind policy can max)."""
    from vla.rl.audit import audit_rewards

    result = audit_rewards(all_samples)
    policies = result["policies"]
    label = policies["label"]["total"]
    assert set(policies) == {"label", "blind-constant", "blind-prior", "fixed-sentence",
                             "wrong-direction"}
    for name, row in policies.items():
        if name != "label":
            assert row["total"] < label, name
            assert row["win_rate_vs_label"] <= 0.2, (name, row)
    assert policies["fixed-sentence"]["components"]["grounding"] <= 0.3
    assert label - policies["blind-prior"]["total"] >= 0.25 * result["label_total_range"]
    # consistency is paid only with correctness: agreeing with itself is not enough
    assert policies["blind-prior"]["components"]["consistency"] < \
        policies["label"]["components"]["consistency"]


def test_progress_follows_the_reference_path_cut_to_the_horizon(all_samples):
    """The route is the expert's lane-level plan from the ego to the horizon (not whole lane
    centrelines): the expert scores 1, and a lane-keeper at the expert's speed is not
    punished for the expert's lane change (nor a slow lane-changer rewarded)."""
    import numpy as np

    from vla.scoring import progress_ratio

    scored = 0
    for sample in all_samples:
        cache = json.loads(sample["metric_cache"])
        route = np.asarray(cache["route"]["centerline"])
        future = np.asarray(sample["future"])
        assert np.allclose(route[0], 0.0)
        path = np.linalg.norm(np.diff(future[:, :2], axis=0), axis=1).sum()
        assert np.linalg.norm(np.diff(route, axis=0), axis=1).sum() < path + 60.0
        assert len(sample["metric_cache"]) < 30_000
        expert = progress_ratio(future, future, cache)
        if expert is None:
            continue
        scored += 1
        assert expert == pytest.approx(1.0, abs=0.05)
        if abs(future[-1, 2]) < 0.3:  # no turn: straight on in the lane at the expert's own
            keeper = np.column_stack([np.linspace(0, path, len(future) + 1)[1:],  # distance
                                      np.zeros(len(future)), np.zeros(len(future))])
            assert progress_ratio(keeper, future, cache) > 0.9
        half = future.copy()
        half[:, :2] *= 0.5
        assert progress_ratio(half, future, cache) < 0.7
    assert scored > 0
