"""The codec bench and the ``vla codec`` subcommands, on small synthetic data."""

import json

import numpy as np
import pytest

from vla.analysis.codec_bench import BenchSetting, best_fixed, format_table, run_bench
from vla.analysis.synthetic_data import save_synthetic_dataset
from vla.cli import main
from vla.trajectory.data import load_splits
from vla.trajectory.registry import load_codec

REQUIRED = {"codec", "tokens", "vocab", "fixed_length", "ade_mean", "ade_max", "fde_mean",
            "heading_mean_deg", "comfort_share", "encode_ms", "decode_ms"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return save_synthetic_dataset(tmp_path_factory.mktemp("data") / "ds", 400, seed=2)


def test_bench_json_from_synthetic(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["codec", "bench", "--synthetic", "300", "--quick", "--json",
                 "--out", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["codec"] for r in rows} == {"waypoint", "unicycle", "kmeans_segment", "dct_bpe"}
    for r in rows:
        assert set(r) >= REQUIRED
        assert 0 <= r["ade_mean"] <= r["ade_max"] and np.isfinite(r["fde_mean"])
        assert 0 <= r["comfort_share"] <= 1 and r["vocab"] > 0 and r["tokens"] > 0
        assert r["fixed_length"] == (r["codec"] != "dct_bpe")
        assert r["n_test"] == 30
    for name in ("bench.json", "bench.md", "error_vs_tokens.png"):
        assert (out / name).stat().st_size > 0


def test_bench_table_from_a_built_data_set(data_dir, tmp_path, capsys):
    """``vla codec bench``: fit on train, report on test, print the table."""
    assert main(["codec", "bench", "--data", str(data_dir), "--codecs", "unicycle,waypoint",
                 "--quick", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| unicycle" in text and "| waypoint" in text and "| kmeans" not in text
    assert "Best fixed-length codec with <= 16 tokens" in text


def test_run_bench_rows_and_best_fixed(data_dir):
    spec, splits = load_splits(data_dir)
    settings = [BenchSetting("unicycle", {"rate_hz": 2.0, "joint": True, "accel_bins": 16,
                                          "curvature_bins": 16, "lateral": "lateral_accel"}),
                BenchSetting("waypoint", {"rate_hz": 1.0, "bins": 32}),
                BenchSetting("kmeans_segment", {"segment_s": 6.0, "codebook_size": 4096,
                                                "kmeans_iters": 5})]
    rows = run_bench(spec, splits["train"], splits["test"], settings)
    assert [r["tokens"] for r in rows] == [12, 12, 1]
    # the bench shrinks a codebook the training set cannot fill, and says so
    assert rows[2]["vocab"] < 4096 and "codebook_size 4096 ->" in rows[2]["note"]
    best = best_fixed(rows, 16)
    assert best["ade_mean"] == min(r["ade_mean"] for r in rows)
    table = format_table(rows, 1.0)
    body = [line for line in table.splitlines()[2:] if line.startswith("| ")]
    assert len(body) == 3 and "Ground truth within the comfort bounds: 1.000" in table


def test_fit_subcommand_saves_a_loadable_codec(data_dir, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["codec", "fit", "--data", str(data_dir), "--out", str(out),
                 "--set", "codebook_size=256"]) == 0
    assert "saved to" in capsys.readouterr().out
    codec = load_codec(out)
    assert codec.name == "kmeans_segment" and codec.num_tokens == 12  # the default codec
    assert codec.vocab_size == 256
    assert main(["codec", "fit", "--data", str(data_dir), "--out", str(tmp_path / "w"),
                 "--codec", "waypoint", "--set", "rate_hz=1.0", "--set", "bins=64"]) == 0
    assert load_codec(tmp_path / "w").vocab_size == 128
