"""The predictability bench: tabular learners on the prompt's numbers, on built scenes."""

import json

import numpy as np
import pytest

from vla.cli import main
from vla.data.build import load_dataset_dir
from vla.meta_action import LATERAL, LONGITUDINAL
from vla.model.prompting import format_history, quoted_history
from vla.trajectory.baselines import constant_velocity
from vla.trajectory.data import read_spec, split_from_dataset
from vla.trajectory.predictability import PredictabilityConfig, prompt_features


def test_features_are_the_numbers_the_prompt_quotes(small_data_dir):
    dataset, _ = load_dataset_dir(small_data_dir)
    test = dataset["test"]
    commands = sorted(set(dataset["train"]["command"]))
    plain = prompt_features(test, commands, with_decisions=False)
    labelled = prompt_features(test, commands, with_decisions=True)
    assert plain.shape == (len(test), 3 + 5 * 3 + len(commands))
    assert labelled.shape[1] == plain.shape[1] + len(LONGITUDINAL) + len(LATERAL)
    sample = test[0]
    quoted = [tuple(float(v) for v in row.strip("()").split(", "))
              for row in format_history(sample["history"]).split("; ")]
    rows = quoted_history(sample["history"])[:, [0, 1, 3]]
    np.testing.assert_allclose(np.round(rows, 1), np.array(quoted), atol=1e-9)
    np.testing.assert_allclose(plain[0, 3:18], rows.ravel())
    assert plain[0, :3].tolist() == pytest.approx(
        [sample["ego_speed"], sample["ego_accel"], sample["ego_yaw_rate"]])


def test_bench_scores_the_baselines_and_a_codebook(small_data_dir, capsys):
    assert main(["tokenizer", "predictability", "--data", str(small_data_dir),
                 "--codebook-sizes", "4", "--max-iter", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {r["predictor"]: r for r in result["rows"]}
    assert set(rows) == {"constant velocity", "damped-acceleration prior", "ridge",
                         "boosted trees, mean", "boosted trees, mode, 4 entries"}
    # the constant-velocity row, recomputed here from the test split
    dataset, _ = load_dataset_dir(small_data_dir)
    spec = read_spec(small_data_dir)
    test = split_from_dataset(dataset["test"], spec)
    cv = np.stack([constant_velocity(e, spec)[:30, :2] for e in test.egos])
    expected = float(np.linalg.norm(cv - test.trajectories[:, :30, :2], axis=-1).mean())
    assert rows["constant velocity"]["ade_3s"] == pytest.approx(expected, rel=1e-9)
    assert result["n_test"] == len(test)
    mode = rows["boosted trees, mode, 4 entries"]
    assert 0 <= mode["share_entry_0"] <= 1 and 0 <= mode["share_entry_0_label"] <= 1
    assert all(np.isfinite(r["ade_3s"]) and r["ade_3s"] >= 0 for r in rows.values())


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="codebook_sizes"):
        PredictabilityConfig(data=tmp_path, codebook_sizes=(1,))
    with pytest.raises(ValueError, match="max_iter"):
        PredictabilityConfig(data=tmp_path, max_iter=0)
