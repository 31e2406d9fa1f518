"""The tiny preset: a real Qwen2.5-VL built from a config, forward pass on two images."""

import json

import numpy as np
import pytest

from vla.model.build import is_saved_model
from vla.model.presets import PRESETS, ModelPreset, get_preset
from vla.model.special_tokens import OUTPUT_DELIMITERS
from vla.serving.parity import hf_forward, synthetic_camera_images


def test_presets_are_valid_and_sized():
    tiny = get_preset("tiny")
    assert tiny.tokens_per_image == 16
    assert sum(tiny.mrope_section) == tiny.head_dim // 2
    assert set(PRESETS) >= {"tiny", "small"}


@pytest.mark.parametrize("override, message", [
    ({"hidden_size": 250}, "not divisible"),
    ({"image_side": 100}, "multiple of patch_size"),
    ({"num_kv_heads": 3}, "multiple of num_kv_heads"),
    ({"vocab_size": 100}, "byte alphabet"),
])
def test_invalid_preset_is_rejected(override, message):
    fields = {**get_preset("tiny").__dict__, **override}
    with pytest.raises(ValueError, match=message):
        ModelPreset(**fields)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="tiny"):
        get_preset("huge")


def test_saved_checkpoint_loads_with_transformers(tiny_model_dir):
    from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

    assert is_saved_model(tiny_model_dir)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    assert 1e6 < sum(p.numel() for p in model.parameters()) < 1e7
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.text_config.vocab_size == len(tokenizer)
    for delimiter in OUTPUT_DELIMITERS:  # each delimiter is one token and survives decoding
        ids = tokenizer(f"a{delimiter}b", add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_tokens_to_ids(delimiter) in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == f"a{delimiter}b"
    assert AutoProcessor.from_pretrained(tiny_model_dir).image_processor is not None


def test_forward_pass_on_two_images(tiny_model_dir):
    images = synthetic_camera_images(2)
    result = hf_forward(tiny_model_dir, images)
    assert result.image_tokens == 2 * get_preset("tiny").tokens_per_image
    assert np.isfinite(result.logprobs).all()
    assert abs(np.exp(result.logprobs).sum() - 1.0) < 1e-6
    # the images reach the logits: different pictures give a different next-token distribution
    other = hf_forward(tiny_model_dir, synthetic_camera_images(2, seed=7))
    assert np.abs(result.logprobs - other.logprobs).max() > 1e-6


def test_model_init_with_a_chosen_codebook_size(tmp_path):
    from vla.cli import main
    from vla.model.loading import load_codec_of

    out = tmp_path / "k8"
    assert main(["model", "init", "--out", str(out), "--codebook-size", "8"]) == 0
    meta = json.loads((out / "vla_model.json").read_text())
    assert meta["codec_vocab"] == 8 and load_codec_of(out).vocab_size == 8
    vocab = json.loads((out / "tokenizer.json").read_text())["added_tokens"]
    names = {t["content"] for t in vocab}
    assert "<traj_7>" in names and "<traj_8>" not in names
    with pytest.raises(SystemExit, match="codebook-size"):
        main(["model", "init", "--out", str(tmp_path / "k1"), "--codebook-size", "1"])
