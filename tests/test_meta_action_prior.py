"""The default codec's meta-action prior: a decision reaches the plan through the prior."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vla.model.parser import parse_output
from vla.model.prompting import assistant_target
from vla.trajectory.codecs.kmeans import (
    KMeansSegmentCodec,
    KMeansSegmentConfig,
    _bend,
    _unbend,
)
from vla.trajectory.registry import load_codec
from vla.trajectory.synthetic import generate
from vla.trajectory.types import EgoState


def _labelled(trajs, egos):
    """Synthetic trajectories labelled with a longitudinal / lateral class from their motion."""
    out = []
    for t, e in zip(trajs, egos, strict=True):
        dv = np.linalg.norm(t[29, :2] - t[28, :2]) * 10 - e.speed
        lon = "decelerate" if dv < -1 else "accelerate" if dv > 1 else "keep_speed"
        yaw = float(np.unwrap(t[:30, 2])[-1])
        lat = "turn_left" if yaw > 0.3 else "turn_right" if yaw < -0.3 else "keep_lane"
        out.append(dataclasses.replace(e, intent_lon=lon, intent_lat=lat))
    return out


@pytest.fixture(scope="module")
def fitted():
    trajs, egos, _ = generate(600, seed=3)
    egos = _labelled(trajs, egos)
    codec = KMeansSegmentCodec(KMeansSegmentConfig(codebook_size=32, zero_tolerance_m=0.3,
                                                   prior="meta_action")).fit(trajs, egos)
    return codec, trajs, egos


def test_class_accelerations_and_yaw_rates_are_fitted_with_their_signs(fitted):
    codec, _, _ = fitted
    acc = codec.intent_accel
    assert set(acc) == {"decelerate", "keep_speed", "accelerate"}  # the classes seen
    assert acc["decelerate"] < -0.3 < 0.3 < acc["accelerate"]
    assert abs(acc["keep_speed"]) < abs(acc["decelerate"])
    assert "stop" not in codec.intent_accel  # no trajectory of that class: the damped prior
    yaw = codec.intent_yaw_rate
    assert yaw["turn_left"] > 0.05 > abs(yaw["keep_lane"])
    assert yaw["turn_right"] < -0.05


def test_all_zero_tokens_follow_the_written_meta_action(fitted):
    codec, _, _ = fitted
    ego = EgoState(speed=12.0, accel=0.0)
    zeros = np.zeros(codec.num_tokens, int)
    plain = codec.decode(zeros, ego)
    brake = codec.decode(zeros, dataclasses.replace(ego, intent_lon="decelerate"))
    speed_up = codec.decode(zeros, dataclasses.replace(ego, intent_lon="accelerate"))
    left = codec.decode(zeros, dataclasses.replace(ego, intent_lat="turn_left"))
    # a_c is about -0.8 / +0.8 m/s^2 here, fading in over 1 s: about 2 m apart at 3 s
    assert brake[29, 0] < plain[29, 0] - 1.5 < speed_up[29, 0] - 3.0
    assert left[29, 1] > 2.0 and left[29, 2] > 0.3 and abs(plain[29, 1]) < 1e-9
    # never reverses: braking from a crawl stops the car instead
    crawl = codec.decode(zeros, EgoState(speed=0.5, intent_lon="decelerate"))
    assert np.all(np.diff(crawl[:, 0]) >= -1e-9)


def test_round_trip_under_the_labelled_intent_stays_within_the_bound(fitted):
    codec, _, _ = fitted
    trajs, egos, _ = generate(60, seed=4)  # held out: not the fit set, which sets the bound
    egos = _labelled(trajs, egos)
    err = [np.max(np.linalg.norm(codec.round_trip(t, e)[:, :2] - t[:, :2], axis=1))
           for t, e in zip(trajs, egos, strict=True)]
    assert max(err) <= codec.stated_bound_m


def test_bend_and_unbend_are_inverses():
    rng = np.random.default_rng(0)
    points, heading = rng.normal(0, 5, (200, 2)), rng.uniform(-3, 3, 200)
    np.testing.assert_allclose(_bend(_unbend(points, heading), heading), points, atol=1e-9)
    np.testing.assert_allclose(_unbend(_bend(points, heading), heading), points, atol=1e-9)


def test_the_other_priors_ignore_intents():
    trajs, egos, _ = generate(200, seed=5)
    labelled = _labelled(trajs, egos)
    for prior in ("damped_acceleration", "constant_velocity"):
        codec = KMeansSegmentCodec(KMeansSegmentConfig(codebook_size=16, prior=prior))
        codec.fit(trajs, labelled)
        for t, e, e_label in zip(trajs[:10], egos[:10], labelled[:10], strict=True):
            ids = codec.encode(t, e)
            np.testing.assert_array_equal(ids, codec.encode(t, e_label))
            np.testing.assert_array_equal(codec.decode(ids, e), codec.decode(ids, e_label))


def test_a_codec_of_the_early_intent_layout_is_refused(fitted, tmp_path):
    codec, _, _ = fitted
    codec.save(tmp_path)
    with np.load(tmp_path / "trajectory_codec.npz") as npz:
        state = {k: npz[k] for k in npz.files if not k.startswith("intent_")}
    np.savez(tmp_path / "trajectory_codec.npz", **state, intent_accel=np.zeros(6))
    with pytest.raises(ValueError, match="earlier layout"):
        load_codec(tmp_path)


def test_the_parser_decodes_under_the_meta_action_it_parsed(fitted):
    codec, _, _ = fitted
    ego = EgoState(speed=12.0)  # no intent: the parser takes the written one
    ids = [0] * codec.num_tokens
    brake = parse_output(assistant_target("x", "decelerate", "keep_lane", ids),
                         codec.num_tokens, codec, ego)
    keep = parse_output(assistant_target("x", "keep_speed", "keep_lane", ids),
                        codec.num_tokens, codec, ego)
    assert brake.trajectory[-1, 0] < keep.trajectory[-1, 0] - 5.0  # ~ 0.8 m/s^2 over 6 s


def test_a_codec_saved_before_the_meta_action_prior_loads_as_the_damped_prior(fitted, tmp_path):
    codec, _, egos = fitted
    codec.save(tmp_path)
    with np.load(tmp_path / "trajectory_codec.npz") as npz:
        state = {k: npz[k] for k in npz.files if not k.startswith("intent_")}
    np.savez(tmp_path / "trajectory_codec.npz", **state)
    old = load_codec(tmp_path)
    ego = dataclasses.replace(egos[0], intent_lon="decelerate", intent_lat="turn_left")
    zeros = np.zeros(codec.num_tokens, int)
    np.testing.assert_allclose(old.decode(zeros, ego),
                               old.decode(zeros, dataclasses.replace(ego, intent_lon=None,
                                                                     intent_lat=None)))


def test_a_malformed_intent_is_refused_and_an_unseen_one_decodes_as_the_damped_prior(fitted):
    with pytest.raises(ValueError, match="intent_lon"):
        EgoState(speed=1.0, intent_lon="")
    codec, _, _ = fitted
    zeros = np.zeros(codec.num_tokens, int)
    np.testing.assert_allclose(codec.decode(zeros, EgoState(speed=9.0, intent_lon="stop")),
                               codec.decode(zeros, EgoState(speed=9.0)))
