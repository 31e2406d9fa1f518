"""Converted driving logs in training and evaluation: the spans they lack carry no loss, a run
mixes them with simulator scenes (``mix``), and open-loop evaluation reports each source."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from log_fixtures_nuscenes import write_nuscenes

from vla.convert.nuscenes import NuScenesConfig, convert_nuscenes
from vla.data.build import load_dataset_dir
from vla.data.mix import mixed_train_split, parse_mix
from vla.metrics import trajectory_metrics
from vla.model.collator import IGNORE, SPANS, Collator
from vla.model.loading import load_model_dir
from vla.training.config import RunConfig


@pytest.fixture(scope="module")
def converted_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuscenes")
    write_nuscenes(root / "logs")
    convert_nuscenes(NuScenesConfig(root=root / "logs", out=root / "converted"))
    return root / "converted"


def test_log_samples_carry_no_reasoning_loss_and_no_loss_past_the_log(tiny_model_dir,
                                                                       converted_dir):
    loaded = load_model_dir(tiny_model_dir)
    rows = [r for split in load_dataset_dir(converted_dir)[0].values() for r in split]
    short = next(r for r in rows if not all(r["future_valid"]))
    full = next(r for r in rows if all(r["future_valid"]))
    assert short["reasoning"] == "" and full["reasoning"] == ""
    batch = Collator(loaded.processor, loaded.codec)([full, short])
    spans, labels = batch["span_ids"], batch["labels"]
    for row in range(2):
        assert not (spans[row] == SPANS["reasoning"]).any()
        assert (spans[row] == SPANS["meta_action"]).any()
    n_tok = loaded.codec.num_tokens
    learned = [int(((spans[row] == SPANS["trajectory"]) & (labels[row] != IGNORE)).sum())
               for row in range(2)]
    # the delimiter, every entry and the end-of-turn token vs only the entries the log covers
    steps_per_token = len(short["future_valid"]) // n_tok
    covered = sum(short["future_valid"]) // steps_per_token
    assert learned[0] == n_tok + 3 and learned[1] == covered + 3 < learned[0]


def test_a_mixed_run_trains_on_both_sources(tiny_model_dir, small_data_dir, converted_dir,
                                            tmp_path):
    from vla.training.run import run_stage

    train = load_dataset_dir(small_data_dir)[0]["train"]
    mixed = mixed_train_split(train, parse_mix(f"{converted_dir}:1"), seed=0)
    sources = set(mixed["source"])
    assert sources == {"sim", "nuscenes"}
    result = run_stage(RunConfig(stage="sft", model=str(tiny_model_dir), data=str(small_data_dir),
                                 mix=f"{converted_dir}:1", out=str(tmp_path / "run"),
                                 max_steps=2, batch_size=2, eval_samples=0, save_steps=10,
                                 max_reasoning_tokens=16, lora_rank=4))
    assert result["global_step"] == 2
    assert json.loads((tmp_path / "run" / "result.json").read_text())["config"]["mix"]


@pytest.mark.parametrize("bad", ["runs/x", "runs/x:0", "runs/x:lots", ":1"])
def test_a_malformed_mix_is_refused_naming_the_entry(bad):
    with pytest.raises(ValueError, match="mix entry"):
        parse_mix(bad)


def test_trajectory_metrics_of_a_log_cover_its_real_future_only(converted_dir):
    rows = [r for split in load_dataset_dir(converted_dir)[0].values() for r in split]
    short = next(r for r in rows if not all(r["future_valid"]))
    n = sum(short["future_valid"])
    gt = np.asarray(short["future"])
    pred = gt.copy()
    pred[:, 0] += 0.1 * np.arange(1, len(gt) + 1)  # 0.1 m more error every step
    pred[n:, 1] += 50.0                             # far off past the end of the log
    m = trajectory_metrics(pred, short, 10.0)
    err = 0.1 * np.arange(1, n + 1)
    assert m["ade"] == pytest.approx(err.mean()) and m["fde"] == pytest.approx(err[-1])
    assert m["l2_avg_3s"] == pytest.approx(err[:30].mean())
    assert m["l2_avg_3s_2hz"] == pytest.approx(np.mean([err[i] for i in (4, 9, 14, 19, 24, 29)]))
    assert m["off_road"] is None  # no lane map in a log: not available, never 0
    # the logged future itself: no collision with the annotated boxes, as far as the expert
    exact = trajectory_metrics(gt, short, 10.0)
    assert exact["collision"] == 0.0 and exact["progress"] == pytest.approx(1.0)
    assert exact["ade"] == 0.0


def test_open_loop_reports_the_simulator_and_the_log_apart(tiny_model_dir, small_data_dir,
                                                           converted_dir):
    done = subprocess.run(
        [sys.executable, "-m", "vla.cli", "eval", "open-loop", "--model", str(tiny_model_dir),
         "--data", str(small_data_dir), "--data", str(converted_dir), "--limit", "2",
         "--split", "validation", "--k", "0", "--no-shortcut", "--no-image-diagnostics",
         "--json"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    sources = result["per_source"]
    assert set(sources) == {"sim", "nuscenes"}
    assert sources["sim"]["samples"] + sources["nuscenes"]["samples"] == result["samples"]
    assert "off_road" in sources["sim"] and "off_road" not in sources["nuscenes"]
    assert "grounding" not in sources["nuscenes"] and "l2_avg_3s_2hz" in sources["nuscenes"]
    assert result["subsets"]["logs"]["samples"] == sources["nuscenes"]["samples"]
    assert sum(result["subsets"][s]["samples"] for s in ("events", "free")) \
        == sources["sim"]["samples"]
    assert [r["data"] for r in result["subset"]] == [str(small_data_dir), str(converted_dir)]


def test_the_trace_report_shows_a_log_samples_real_frames(tiny_model_dir, converted_dir,
                                                         tmp_path):
    """A real prediction on a converted sample, traced, then the HTML report with --data."""
    import re

    trace, out = tmp_path / "predict.jsonl", tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "vla.cli", "predict", "--model",
                           str(tiny_model_dir), "--data", str(converted_dir), "--split", "train",
                           "--index", "0", "--trace", str(trace)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run([sys.executable, "-m", "vla.cli", "traces", "report", str(trace),
                           "--data", str(converted_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    import base64
    import io

    from PIL import Image

    page = out.read_text()
    assert json.loads(trace.read_text().splitlines()[0])["sample_id"] in page
    grids = [Image.open(io.BytesIO(base64.b64decode(b))) for b in re.findall(
        r'<img[^>]*\bsrc="data:image/png;base64,([^"]+)"', page)]
    # the sample's camera grid: its 4 cameras as columns, its 2 frames as rows
    assert any(g.size == (4 * 224, 2 * 112) for g in grids), [g.size for g in grids]


def test_a_mix_of_another_horizon_is_refused_naming_it(small_data_dir, converted_dir):
    dataset, meta = load_dataset_dir(small_data_dir)
    other = {**meta, "horizon_s": 5.0}
    with pytest.raises(ValueError, match="horizon_s"):
        mixed_train_split(dataset["train"], [(str(converted_dir), 1.0)], meta=other)
    mixed = mixed_train_split(dataset["train"], [(str(converted_dir), 1.0)], meta=meta)
    assert len(mixed) >= len(dataset["train"])
