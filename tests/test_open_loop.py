"""Open-loop evaluation with the real tiny model (transformers) on generated scenes."""

import numpy as np
import pytest

from vla.evaluation.open_loop import (
    evaluate_open_loop,
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


def test_shortcut_variants_change_only_what_they_say(scenes):
    sample = scenes[0]
    flat = np.asarray(without_history(sample)["history"])
    assert np.all(flat == flat[-1]) and np.allclose(flat[-1], sample["history"][-1])
    swapped = swapped_command(sample)
    assert swapped["command"] != sample["command"] and swapped["images"] is sample["images"]
