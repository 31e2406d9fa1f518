"""Converted driving logs in training: the spans they lack carry no loss, and a run mixes them
with simulator scenes (``mix``)."""

from __future__ import annotations

import json

import pytest
from log_fixtures_nuscenes import write_nuscenes

from vla.convert.nuscenes import NuScenesConfig, convert_nuscenes
from vla.data.build import load_dataset_dir
from vla.data.mix import mixed_train_split, parse_mix
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
