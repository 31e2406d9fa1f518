"""The predictability bench: tabular learners on the prompt's numbers, on built scenes."""

import json

import numpy as np
import pytest

from vla.analysis.predictability import PredictabilityConfig, interpolate_knots
from vla.cli import main
from vla.data.build import load_dataset_dir
from vla.meta_action import LATERAL, LONGITUDINAL
from vla.model.prompt_features import prompt_features
from vla.model.prompting import format_history, quoted_history
from vla.trajectory.baselines import constant_velocity, damped_acceleration
from vla.trajectory.data import read_spec, split_from_dataset
from vla.trajectory.registry import default_codec


def test_features_are_the_numbers_the_prompt_quotes(small_data_dir):
    dataset, _ = load_dataset_dir(small_data_dir)
    test = dataset["test"]
    commands = sorted(set(dataset["train"]["command"]) | set(test["command"]))
    plain = prompt_features(test, commands, with_decisions=False)
    labelled = prompt_features(test, commands, with_decisions=True)
    assert plain.shape == (len(test), 3 + 5 * 3 + len(commands))
    assert labelled.shape[1] == plain.shape[1] + len(LONGITUDINAL) + len(LATERAL)
    sample = test[0]
    quoted = [tuple(float(v) for v in row.strip("()").split(", "))
              for row in format_history(sample["history"]).split("; ")]
    rows = quoted_history(sample["history"])[:, [0, 1, 3]]
    np.testing.assert_allclose(np.round(rows, 1), np.array(quoted), atol=1e-9)
    np.testing.assert_allclose(plain[0, 3:18], np.array(quoted).ravel(), atol=1e-9)
    assert plain[0, :3].tolist() == pytest.approx(
        [round(sample["ego_speed"], 1), round(sample["ego_accel"], 1),
         round(sample["ego_yaw_rate"], 2)])
    one_hot = plain[0, 18:]
    assert one_hot.sum() == 1 and commands[int(one_hot.argmax())] == sample["command"]
    others = [c for c in commands if c != sample["command"]]  # a command unseen in training
    assert prompt_features(test.select([0]), others, with_decisions=False)[0, 18:].sum() == 0
    decision = labelled[0, plain.shape[1]:]
    assert LONGITUDINAL[int(decision[:len(LONGITUDINAL)].argmax())] == sample["decision_lon"]
    assert LATERAL[int(decision[len(LONGITUDINAL):].argmax())] == sample["decision_lat"]


def test_knots_are_interpolated_linearly_from_zero():
    out = interpolate_knots(np.array([[1.0, 2.0, 3.0]]), hz=10.0, n=30)
    assert out.shape == (1, 30)
    assert out[0, 4] == pytest.approx(0.5) and out[0, 9] == pytest.approx(1.0)
    assert out[0, 14] == pytest.approx(1.5) and out[0, 29] == pytest.approx(3.0)


def test_bench_scores_the_baselines_and_a_codebook(small_data_dir, capsys):
    assert main(["codec", "predictability", "--data", str(small_data_dir),
                 "--codebook-sizes", "4", "--max-iter", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {r["predictor"]: r for r in result["rows"]}
    assert set(rows) == {"constant velocity", "damped-acceleration prior", "ridge",
                         "boosted trees, mean", "boosted trees, mode, 4 entries"}
    # the baselines and the codec's round trip, recomputed here from the splits
    dataset, _ = load_dataset_dir(small_data_dir)
    spec = read_spec(small_data_dir)
    train, test = (split_from_dataset(dataset[s], spec) for s in ("train", "test"))
    true = test.trajectories[:, :30, :2]

    def ade(pred):
        return float(np.linalg.norm(np.asarray(pred)[:, :30, :2] - true, axis=-1).mean())

    assert result["n_test"] == len(test) and result["n_train"] == len(train)
    assert rows["constant velocity"]["ade_3s"] == pytest.approx(
        ade([constant_velocity(e, spec) for e in test.egos]), rel=1e-9)
    assert rows["damped-acceleration prior"]["ade_3s"] == pytest.approx(
        ade([damped_acceleration(e, spec) for e in test.egos]), rel=1e-9)
    codec = default_codec(hz=spec.hz, horizon_s=spec.horizon_s, codebook_size=4)
    codec.fit(train.trajectories, train.egos)
    tokens = [codec.encode(t, e) for t, e in zip(test.trajectories, test.egos, strict=True)]
    mode = rows["boosted trees, mode, 4 entries"]
    assert mode["round_trip_ade_3s"] == pytest.approx(
        ade([codec.decode(t, e) for t, e in zip(tokens, test.egos, strict=True)]), rel=1e-9)
    assert mode["share_entry_0_label"] == pytest.approx(np.mean(np.array(tokens)[:, :6] == 0))
    assert all(np.isfinite(r["ade_3s"]) for r in rows.values())


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="--codebook-sizes"):
        main(["codec", "predictability", "--data", str(tmp_path), "--codebook-sizes", "1"])
    with pytest.raises(ValueError, match="codebook_sizes"):
        PredictabilityConfig(data=tmp_path, codebook_sizes=(1,))
    with pytest.raises(ValueError, match="max_iter"):
        PredictabilityConfig(data=tmp_path, max_iter=0)
