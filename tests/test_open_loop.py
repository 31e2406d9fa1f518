"""Open-loop evaluation with the real tiny model (transformers) on generated scenes."""

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from vla.data.subsets import subset_name
from vla.evaluation.open_loop import (
    blanked_images,
    evaluate_open_loop,
    shuffle_partners,
    split_by_subset,
    swapped_command,
    trajectory_metrics,
    without_history,
)
from vla.trajectory.baselines import constant_velocity
from vla.trajectory.types import ego_state_of


@pytest.fixture(scope="module")
def scenes(small_train_split):
    return small_train_split.select(range(3))


def test_l2_conventions_are_what_their_names_say(scenes):
    sample = scenes[0]
    gt = np.asarray(sample["future"])
    pred = gt.copy()
    t = np.arange(1, 61) / 10
    pred[:, 1] += t  # the error grows 1 m per second
    m = trajectory_metrics(pred, sample, 10.0)
    assert m["l2_at_1s"] == pytest.approx(1.0) and m["l2_at_3s"] == pytest.approx(3.0)
    assert m["l2_avg_1s"] == pytest.approx(t[:10].mean())
    assert m["l2_avg_3s"] == pytest.approx(t[:30].mean())
    assert m["fde"] == pytest.approx(6.0)


def test_open_loop_reports_model_baselines_scenarios_and_shortcuts(tiny_model_dir, scenes):
    from vla.model.generate import TransformersPolicy
    from vla.model.loading import load_model_dir

    policy = TransformersPolicy(load_model_dir(tiny_model_dir), max_reasoning_tokens=16)
    sampled = {}

    class Recording:  # the real model; keeps what it sampled
        name = policy.name

        def decide(self, samples, n=1, temperature=0.0):
            out = policy.decide(samples, n, temperature)
            if temperature > 0:
                sampled[samples[0]["sample_id"]] = [o.decision for o in out]
            return out

    result = evaluate_open_loop(Recording(), scenes, 10.0, k=2, progress=False,
                                temperature=0.5)
    assert result["samples"] == 3
    model = result["model"]
    assert model["parsed"] == 1.0  # constrained decoding
    assert {"l2_at_3s", "l2_avg_3s", "min_ade_2", "collision", "off_road", "consistency",
            "grounding", "accuracy_lon"} <= set(model)
    assert model["min_ade_2"] >= 0
    means = [trajectory_metrics(np.mean([d.trajectory for d in sampled[s["sample_id"]]], 0), s,
                                10.0)["l2_avg_3s"] for s in scenes]
    assert result["model_mean_k"]["l2_avg_3s"] == pytest.approx(np.mean(means), abs=1e-4)
    assert result["temperature"] == 0.5
    expert = result["baselines"]["expert"]
    assert expert["ade"] == 0.0 and expert["collision"] == 0.0 and expert["off_road"] == 0.0
    cv = np.mean([trajectory_metrics(constant_velocity(ego_state_of(s)), s, 10.0)["ade"]
                  for s in scenes])
    assert result["baselines"]["constant-velocity"]["ade"] == pytest.approx(cv, abs=1e-4)
    assert sum(s["samples"] for s in result["per_scenario"].values()) == 3
    assert set(result["shortcut"]) == {"history_removed", "history_perturbed",
                                       "command_swapped"}
    assert all("delta_ade" in v for v in result["shortcut"].values())
    # the blind rows, scored with the model's metrics on the same samples
    refs = result["references"]
    assert set(refs) == {"blind-constant", "blind-prior"}
    prior = result["baselines"]["damped-acceleration"]
    for row in refs.values():
        assert row["parsed"] == 1.0 and row["l2_avg_3s"] == pytest.approx(prior["l2_avg_3s"],
                                                                           abs=1e-4)
        assert {"accuracy_lon", "consistency", "correct_and_consistent", "grounding"} <= set(row)
    assert refs["blind-prior"]["consistency"] == 1.0  # agrees with itself by construction
    assert refs["blind-prior"]["correct_and_consistent"] <= refs["blind-prior"]["accuracy_lon"]
    # the image diagnostics: two more greedy runs per sample, scored like the model's
    images = result["image_diagnostics"]
    assert set(images) == {"images_blanked", "images_shuffled"}
    for row in images.values():
        assert row["samples"] == 3 and row["parsed"] == 1.0
        assert {"accuracy_lon", "l2_avg_3s", "delta_accuracy_lon", "delta_ade",
                "meta_action_changed", "trajectory_shift"} <= set(row)
        assert row["delta_ade"] == pytest.approx(row["ade"] - model["ade"], abs=2e-4)
    subsets = result["subsets"]
    assert subsets["events"]["samples"] + subsets["free"]["samples"] == 3
    for part in subsets.values():
        assert set(part["references"]) == set(refs)
        assert set(part["image_diagnostics"]) == set(images)


def test_open_loop_without_image_diagnostics_keeps_the_subsets(tiny_model_dir, scenes):
    from vla.policy_factory import make_policy

    policy = make_policy(model_dir=tiny_model_dir, max_reasoning_tokens=16)
    result = evaluate_open_loop(policy, scenes.select(range(1)), 10.0, k=0, shortcut=False,
                                progress=False, image_diagnostics=False)
    assert "image_diagnostics" not in result and "shortcut" not in result
    part = result["subsets"][subset_name(scenes[0])]
    assert part["samples"] == 1 and part["model"] == result["model"]
    assert "image_diagnostics" not in part


def test_shortcut_variants_change_only_what_they_say(scenes):
    sample = scenes[0]
    flat = np.asarray(without_history(sample)["history"])
    assert np.all(flat == flat[-1]) and np.allclose(flat[-1], sample["history"][-1])
    swapped = swapped_command(sample)
    assert swapped["command"] != sample["command"] and swapped["images"] is sample["images"]


def _images_key(images) -> str:
    """A fingerprint of a sample's camera images (PIL images or PNG parts)."""
    digest = hashlib.sha1()
    for image in images:
        if isinstance(image, dict):
            image = Image.open(io.BytesIO(image["bytes"]))
        digest.update(image.convert("RGB").tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def spread(small_train_split):
    """Eight samples spread over the small data set's episodes."""
    step = len(small_train_split) // 8
    return small_train_split.select(range(0, 8 * step, step))


def test_image_diagnostics_show_other_images_and_score_against_the_own_labels(spread):
    """A policy that reads the labels off the images it is shown: right on the unaltered
    samples; on shuffled images it answers the partner's labels, which are scored against the
    sample's own; on black images it falls back to ``keep_speed, keep_lane``."""
    from vla.reference import DecisionPolicy, blind_constant, label_decision

    samples = list(spread)
    by_images = {_images_key(s["images"]): s for s in samples}
    shown = []

    def reads_images(sample):
        key = _images_key(sample["images"])
        shown.append((sample["sample_id"], key))
        return label_decision(by_images[key]) if key in by_images else blind_constant(sample)

    policy = DecisionPolicy("reads-images", reads_images)
    result = evaluate_open_loop(policy, samples, 10.0, k=0, shortcut=False, progress=False,
                                references={"blind-constant": DecisionPolicy(
                                    "blind-constant", blind_constant)})
    partners = shuffle_partners([len(s["images"]) for s in samples])
    assert all(p is not None for p in partners)
    # every sample was shown its own images, black ones, and its partner's
    for i, sample in enumerate(samples):
        keys = [key for sid, key in shown if sid == sample["sample_id"]]
        assert keys[0] == _images_key(sample["images"])
        assert keys[1] not in by_images
        assert keys[2] == _images_key(samples[partners[i]]["images"])

    def lon_accuracy(indices, answer) -> float:
        return float(np.mean([answer(i) == samples[i]["decision_lon"] for i in indices]))

    everyone = range(len(samples))
    assert result["model"]["accuracy_lon"] == 1.0
    images = result["image_diagnostics"]
    shuffled = lon_accuracy(everyone, lambda i: samples[partners[i]]["decision_lon"])
    assert shuffled < 1.0  # the partners' labels differ somewhere: the test discriminates
    assert images["images_shuffled"]["accuracy_lon"] == pytest.approx(shuffled, abs=1e-4)
    assert images["images_shuffled"]["delta_accuracy_lon"] == pytest.approx(shuffled - 1.0,
                                                                            abs=1e-4)
    assert images["images_blanked"]["accuracy_lon"] == (
        result["references"]["blind-constant"]["accuracy_lon"])
    changed = np.mean([(s["decision_lon"], s["decision_lat"]) != ("keep_speed", "keep_lane")
                       for s in samples])
    assert images["images_blanked"]["meta_action_changed"] == pytest.approx(changed, abs=1e-4)
    # the subsets: the same rows restricted to the event samples and to free driving
    split = split_by_subset(samples)
    for name, indices in split.items():
        part = result["subsets"][name]
        assert part["samples"] == len(indices)
        if not indices:
            assert part["model"] == {}
            continue
        assert part["model"]["accuracy_lon"] == 1.0
        assert part["image_diagnostics"]["images_shuffled"]["accuracy_lon"] == pytest.approx(
            lon_accuracy(indices, lambda i: samples[partners[i]]["decision_lon"]), abs=1e-4)
        assert part["references"]["blind-constant"]["accuracy_lon"] == pytest.approx(
            lon_accuracy(indices, lambda i: "keep_speed"), abs=1e-4)


def test_shuffle_partners_are_a_deterministic_permutation_without_fixed_points():
    counts = [6, 6, 3, 6, 6, 3, 6, 1, 3]
    partners = shuffle_partners(counts)
    assert partners == shuffle_partners(counts)
    assert partners[7] is None  # alone with its number of images
    for count in (6, 3):
        group = [i for i, c in enumerate(counts) if c == count]
        assert sorted(partners[i] for i in group) == group  # a permutation of the group
        assert all(partners[i] != i for i in group)
    assert [partners[i] for i in (0, 1, 3, 4, 6)] == [3, 4, 6, 0, 1]  # half the group away
    assert shuffle_partners([2, 2]) == [1, 0]


def test_blanked_images_keep_sizes_and_form():
    picture = Image.new("RGB", (8, 5), (200, 30, 10))
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (9, 9, 9)).save(buffer, format="PNG")
    blank_pil, blank_part = blanked_images([picture, {"bytes": buffer.getvalue(), "path": None}])
    assert blank_pil.size == (8, 5) and not np.asarray(blank_pil).any()
    decoded = Image.open(io.BytesIO(blank_part["bytes"]))
    assert decoded.size == (4, 3) and not np.asarray(decoded).any()
    with pytest.raises(TypeError, match=r"images\[0\]: expected a PIL image"):
        blanked_images(["not an image"])
    with pytest.raises(ValueError, match=r"images\[1\]: bytes are not a readable image"):
        blanked_images([picture, {"bytes": b"not a png", "path": None}])


def test_samples_split_into_event_samples_and_free_driving():
    names = ["free_cruise", "lead_brake", "junction", "slower_lead", "roundabout_yield",
             "free_accelerate"]
    split = split_by_subset([{"scenario": s} for s in names])
    assert split == {"events": [1, 2, 4], "free": [0, 3, 5]}
    logs = split_by_subset([{"scenario": "log", "source": "nuscenes"},
                            {"scenario": "lead_brake", "source": "sim"}])
    assert logs == {"events": [1], "free": [], "logs": [0]}
    with pytest.raises(ValueError, match="unknown scenario 'parking'"):
        split_by_subset([{"scenario": "lead_brake"}, {"scenario": "parking"}])
