"""Rewards on hand-made samples: the label scores high, and the adversarial cases score low."""

import json

import numpy as np
import pytest

from vla.meta_action import MetaAction
from vla.model.parser import Decision
from vla.model.prompting import assistant_target
from vla.rl.rewards import (
    RewardWeights,
    score_completion,
    trajectory_reward,
    unparsable_total,
)
from vla.scoring import boxes_overlap, first_collision, off_road
from vla.trajectory.types import EgoState

T = np.arange(1, 61) / 10.0  # 10 Hz over 6 s


@pytest.fixture(scope="module")
def codec():
    """A k-means codec fitted on synthetic driving plus the manoeuvres used below."""
    from vla.trajectory.registry import make_codec
    from vla.trajectory.synthetic import generate

    trajs, egos, _ = generate(1200, seed=5)
    extra, extra_egos = [], []
    for v in np.linspace(8.0, 30.0, 12):
        for shape in [_cruise(v), *(_braking(v, d) for d in np.linspace(1.0, 8.0, 15)),
                      *(_lane_change(v, dy) for dy in (-4.0, -3.5, 3.5, 4.0))]:
            extra.append(shape)
            extra_egos.append(EgoState(float(v)))
    return make_codec("kmeans_segment", segment_s=0.5, codebook_size=512,
                      zero_tolerance_m=0.3).fit(np.concatenate([trajs, np.stack(extra)]),
                                                list(egos) + extra_egos)


def _straight_lanes(n_lanes=3, width=4.0, length=250.0):
    xs = np.linspace(-20, length, 60)
    return [{"name": ["a", "b", str(i)], "width": width,
             "centerline": np.column_stack([xs, np.full_like(xs, -i * width)]).tolist()}
            for i in range(-1, n_lanes - 1)]


def _cache(agents=()):
    xs = np.linspace(0, 250, 60)
    return {"dt": 0.1, "agents": list(agents), "lanes": _straight_lanes(),
            "route": {"lanes": [], "centerline": np.column_stack([xs, 0 * xs]).tolist(),
                      "command": "follow_road"},
            "ego": {"length": 5.0, "width": 2.0, "speed": 20.0, "target_speed": 20.0,
                    "speed_limit": 30.0}}


def _sample(future, speed, lon, lat, reasoning, critical, cache):
    return {"sample_id": "s", "future": np.asarray(future).tolist(), "ego_speed": speed,
            "ego_accel": 0.0, "ego_yaw_rate": 0.0, "decision_lon": lon, "decision_lat": lat,
            "reasoning": reasoning, "critical": json.dumps(critical),
            "metric_cache": json.dumps(cache)}


def _completion(codec, reasoning, lon, lat, trajectory, speed):
    ids = codec.encode(np.asarray(trajectory), EgoState(speed))
    return assistant_target(reasoning, lon, lat, ids) + "<|im_end|>"


def _cruise(speed=20.0):
    return np.column_stack([speed * T, 0 * T, 0 * T])


def _lane_change(speed=20.0, dy=-4.0):
    s = np.clip(T / 4.0, 0, 1)
    y = dy * (10 * s**3 - 15 * s**4 + 6 * s**5)
    yaw = np.gradient(y, T) / speed
    return np.column_stack([speed * T, y, yaw])


def _braking(speed=20.0, decel=4.0):
    t_stop = speed / decel
    tc = np.minimum(T, t_stop)
    return np.column_stack([speed * tc - 0.5 * decel * tc**2, 0 * T, 0 * T])


LEAD = {"kind": "agent", "id": 7, "class": "car", "position_m": [30.0, 0.0],
        "facts": ["lead", "braking"]}
STOPPED = {**LEAD, "facts": ["stopped", "lead"]}


def test_the_label_itself_scores_high(codec):
    reasoning = ("The lead car 30 m ahead is braking: its speed fell from 20 to 16 m/s "
                 "between frame 1 and frame 2, so decelerate and keep the lane.")
    sample = _sample(_braking(), 20.0, "decelerate", "keep_lane", reasoning, [LEAD], _cache())
    result = score_completion(_completion(codec, reasoning, "decelerate", "keep_lane",
                                          _braking(), 20.0), sample, codec)
    r = result.rewards
    assert result.error is None and r["format"].value == 1.0
    assert r["consistency"].value == 1.0
    assert r["trajectory"].components["ade_3s_m"] < 0.3 and r["trajectory"].value > 0.9
    assert not r["trajectory"].components["collision"] and not r["trajectory"].components[
        "off_road"]
    assert r["grounding"].value == 1.0 and r["coherence"].value == 1.0
    assert result.total > 3.0
    assert json.loads(json.dumps(result.to_json()))["consistency"]["lateral"] is True


def test_unparsable_output_ranks_below_every_parsable_one(codec):
    sample = _sample(_cruise(), 20.0, "keep_speed", "keep_lane", "x", [LEAD], _cache())
    result = score_completion("<|cot_start|>the lane is clear<|cot_end|> keep going", sample,
                              codec)
    assert result.decision is None and "meta_action_start" in result.error
    assert all(r.value == 0.0 for r in result.rewards.values())
    assert result.total == unparsable_total(RewardWeights())
    # the worst parsable completion: nonsense reasoning, wrong decision, off the road through
    # a stopped car's footprint; it still totals more than the parse failure
    wall = {"id": 9, "class": "truck", "length": 400.0, "width": 40.0,
            "future": [[100.0, 0.0, 0.0]] * 60}  # whatever the decoded path, it hits this
    worst_sample = _sample(_cruise(), 20.0, "stop", "turn_left", "x", [LEAD], _cache([wall]))
    off = np.column_stack([20 * T, np.full(60, 9.0), 0 * T])
    worst = score_completion(_completion(codec, "nonsense", "accelerate", "turn_right", off,
                                         20.0), worst_sample, codec)
    assert worst.rewards["trajectory"].components["collision"]
    assert worst.rewards["trajectory"].components["off_road"]
    assert worst.total > result.total
    assert result.rewards["format"].components["kind"] == "missing_delimiter"


def test_says_left_while_the_trajectory_goes_right_is_inconsistent(codec):
    reasoning = "The left lane has room, so keep speed and change lane to the left."
    sample = _sample(_lane_change(dy=4.0), 20.0, "keep_speed", "lane_change_left", reasoning,
                     [], _cache())
    result = score_completion(_completion(codec, reasoning, "keep_speed", "lane_change_left",
                                          _lane_change(dy=-4.0), 20.0), sample, codec)
    consistency = result.rewards["consistency"]
    assert consistency.value == 0.5  # right and driven on the longitudinal axis only
    assert consistency.components["lateral"] is False
    assert consistency.components["derived"].endswith("lane_change_right")
    honest = score_completion(_completion(codec, reasoning, "keep_speed", "lane_change_left",
                                          _lane_change(dy=4.0), 20.0), sample, codec)
    assert honest.rewards["consistency"].value == 1.0
    assert honest.total > result.total


def test_driving_through_an_agent_is_penalised(codec):
    stopped = {"id": 7, "class": "car", "length": 5.0, "width": 2.0,
               "future": [[45.0, 0.0, 0.0]] * 60}
    cache = _cache([stopped])
    reasoning = "The lane ahead is clear, so keep speed and keep the lane."
    sample = _sample(_braking(20.0, 20.0**2 / (2 * 33.0)), 20.0, "stop", "keep_lane",
                     reasoning, [LEAD], cache)
    through = score_completion(_completion(codec, reasoning, "keep_speed", "keep_lane",
                                           _cruise(), 20.0), sample, codec)
    traj = through.rewards["trajectory"]
    assert traj.components["collision"]
    stops = score_completion(_completion(codec, reasoning, "stop", "keep_lane",
                                         _braking(20.0, 20.0**2 / (2 * 33.0)), 20.0),
                             sample, codec)
    assert not stops.rewards["trajectory"].components["collision"]
    gap = stops.rewards["trajectory"].value - traj.value
    assert gap >= RewardWeights().collision_penalty  # the penalty, plus the worse ADE


def test_copying_the_label_over_a_constant_speed_trajectory_scores_low(codec):
    reasoning = ("A stopped vehicle is stopped in our lane 50 m ahead: it did not move "
                 "between frame 1 and frame 2, so stop and keep the lane.")
    sample = _sample(_braking(), 20.0, "stop", "keep_lane", reasoning, [STOPPED], _cache())
    copied = score_completion(_completion(codec, reasoning, "stop", "keep_lane", _cruise(),
                                          20.0), sample, codec)
    assert copied.rewards["trajectory"].components["ade_3s_m"] > 3.0
    assert copied.rewards["trajectory"].value < 0.6
    assert copied.rewards["consistency"].value == 0.5  # says stop, drives on; lane right
    assert copied.rewards["grounding"].value == 1.0  # the words alone are right
    right = score_completion(_completion(codec, reasoning, "stop", "keep_lane", _braking(),
                                         20.0), sample, codec)
    assert right.rewards["trajectory"].value - copied.rewards["trajectory"].value > 0.6
    assert right.total > copied.total + 0.6


def test_trajectory_reward_has_no_cliff(codec):
    """Farther from the expert always scores lower: no gate past which every error is equal."""
    sample = _sample(_cruise(), 20.0, "keep_speed", "keep_lane", "x", [LEAD], _cache())
    values = []
    for shift in (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 9.0):
        pred = _cruise() + np.array([shift, 0.0, 0.0])  # ADE = the shift, still in the lane
        values.append(trajectory_reward(Decision("x", MetaAction("keep_speed", "keep_lane"),
                                                 [], pred), sample, RewardWeights()).value)
    assert all(a > b for a, b in zip(values[:-1], values[1:], strict=True))
    assert values[3] - values[6] > 0.1  # beyond 3 m the reward still separates 3 m from 9 m


def test_scoring_geometry():
    square = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], float)
    assert boxes_overlap(square, square + 1.5)
    assert not boxes_overlap(square, square + np.array([2.5, 0.0]))
    diamond = np.array([[0, 1.5], [1.5, 0], [0, -1.5], [-1.5, 0]])  # a square turned 45°
    # bounding boxes overlap, the shapes do not: only the diamond's own axes separate them
    assert not boxes_overlap(square, diamond + np.array([2.2, 2.2]))
    assert boxes_overlap(square, diamond + np.array([2.0, 0.0]))  # a corner inside the square
    cache = _cache([{"id": 3, "class": "car", "length": 5.0, "width": 2.0,
                     "future": [[30.0 + 10 * 0.1 * k, 4.0, 0.0] for k in range(1, 61)]}])
    assert first_collision(_cruise(), cache) == (None, None)  # the agent is in the next lane
    assert off_road(_cruise(), cache) is False
    assert off_road(np.column_stack([20 * T, 9.0 * np.ones(60), 0 * T]), cache) is True
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        RewardWeights(consistency=-1.0)


def test_progress_does_not_depend_on_which_lane():
    """The expert changes lane; a lane-keeper at its speed makes the same progress, a
    lane-changer at half its speed half of it (a route made of whole lane centrelines jumped
    back at the lane change and scored these 0.007 and 0.996)."""
    from vla.scoring import progress_ratio

    expert = _lane_change(20.0, 4.0)
    route = np.vstack([[0.0, 0.0], expert[:, :2], expert[-1, :2] + [30.0, 0.0]])
    cache = {**_cache(), "route": {"lanes": [], "centerline": route.tolist(),
                                   "command": "follow_road"}}
    assert progress_ratio(expert, expert, cache) == pytest.approx(1.0, abs=0.01)
    assert progress_ratio(_cruise(20.0), expert, cache) == pytest.approx(1.0, abs=0.05)
    slow = expert.copy()
    slow[:, 0] *= 0.5
    assert progress_ratio(slow, expert, cache) == pytest.approx(0.5, abs=0.05)
