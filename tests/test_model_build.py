"""The tiny preset: a real Qwen2.5-VL built from a config, its image budget, forward pass on
two images."""

import json

import numpy as np
import pytest

from vla.model.build import is_saved_model
from vla.model.presets import PRESETS, ModelPreset, get_preset
from vla.model.special_tokens import OUTPUT_DELIMITERS
from vla.serving.parity import hf_forward, synthetic_camera_images


def test_presets_are_valid_and_sized():
    tiny = get_preset("tiny")
    # the default rig's 224x112 camera image passes unscaled: 8x4 tokens, the tiny budget
    assert tiny.max_image_pixels >= 224 * 112 and tiny.max_tokens_per_image == 32
    assert tiny.image_size_seen(224, 112) == (224, 112) and tiny.tokens_per_image(224, 112) == 32
    assert tiny.image_size_seen(448, 224) == (224, 112)  # a larger one is scaled into the budget
    assert get_preset("small").max_image_pixels > tiny.max_image_pixels
    assert sum(tiny.mrope_section) == tiny.head_dim // 2
    assert set(PRESETS) >= {"tiny", "small"}


@pytest.mark.parametrize("override, message", [
    ({"hidden_size": 250}, "not divisible"),
    ({"vision_window_px": 100}, "multiple of patch_size"),
    ({"max_image_pixels": 1000}, "min_image_pixels 3136 <= max_image_pixels 1000"),
    ({"min_image_pixels": 100}, "one token"),
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


def test_saved_processor_keeps_camera_images_at_their_size(tiny_model_dir):
    """Images and video frames reach the model at their rendered size (multiples of 28 px),
    up to the preset's pixel budget; the saved processor config (which vLLM also reads)
    carries the bounds."""
    from PIL import Image
    from transformers import AutoProcessor

    tiny = get_preset("tiny")
    saved = json.loads((tiny_model_dir / "processor_config.json").read_text())
    bounds = {"shortest_edge": tiny.min_image_pixels, "longest_edge": tiny.max_image_pixels}
    for part in ("image_processor", "video_processor"):
        assert {k: saved[part]["size"][k] for k in bounds} == bounds
    processor = AutoProcessor.from_pretrained(tiny_model_dir)

    def grid(width, height):
        image = Image.fromarray(np.zeros((height, width, 3), np.uint8))
        return processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"]

    assert grid(224, 112).tolist() == [[1, 8, 16]]  # 14-px patches: 8x4 tokens after merging
    assert grid(112, 224).tolist() == [[1, 16, 8]]
    assert grid(56, 28).tolist() == [[1, 4, 6]]  # below min_image_pixels: scaled up to 84x56
    big = grid(896, 448)  # 16 times the budget: scaled down, keeping the aspect
    assert big.tolist() == [[1, 8, 16]] and big.prod() * 14 * 14 <= tiny.max_image_pixels
    for width, height in ((224, 112), (168, 84), (896, 448), (300, 100)):
        t, h, w = grid(width, height)[0].tolist()
        assert tiny.tokens_per_image(width, height) == h * w // 4
    video = np.zeros((2, 112, 224, 3), np.uint8)  # two frames of one camera
    thw = processor.video_processor(videos=[video], return_tensors="pt")["video_grid_thw"]
    assert thw.tolist() == [[1, 8, 16]]


def test_forward_pass_on_two_images(tiny_model_dir):
    images = synthetic_camera_images(2)
    result = hf_forward(tiny_model_dir, images)
    # the two frames are one video of one temporal patch: the tokens of one image
    assert result.image_tokens == get_preset("tiny").tokens_per_image(112, 112)
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
    assert meta["max_image_pixels"] == 224 * 112 and meta["max_tokens_per_image"] == 32
    vocab = json.loads((out / "tokenizer.json").read_text())["added_tokens"]
    names = {t["content"] for t in vocab}
    assert "<traj_7>" in names and "<traj_8>" not in names
    with pytest.raises(SystemExit, match="codebook-size"):
        main(["model", "init", "--out", str(tmp_path / "k1"), "--codebook-size", "1"])
