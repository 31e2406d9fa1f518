"""Exact-shape models (vla/model/shapes.py): the published architectures with random weights.

Each shape builds at one language layer; its parameters per component, extrapolated to the
full depth, give the published checkpoint's total (and so does the full-depth model on the
``meta`` device, counted independently). The smallest shape at one layer is saved by
``vla model init --shape``, loads, generates a decision under the output grammar (which never
writes the embedding rows past our small tokenizer) and takes a LoRA adapter of the GPU
recipe's rank; the same directory is served by vLLM (``server`` tier).
"""

import json
from pathlib import Path

import pytest
import yaml

from vla.model.shapes import (
    COMPONENTS,
    SHAPES,
    added_token_count,
    build_shape,
    extrapolate_parameters,
    parameter_breakdown,
)

SMALLEST = "cosmos-reason2-2b"
RECIPE = Path(__file__).resolve().parents[1] / "train/configs/cosmos_reason1_7b_stage2.yaml"


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_one_layer_extrapolates_to_the_published_total(name):
    shape = SHAPES[name]
    cut = build_shape(name, layers=1)
    assert cut.layers == 1 and 1 <= cut.vision_depth < shape.vision_depth
    estimate = extrapolate_parameters(parameter_breakdown(cut.on_meta()), cut)
    assert abs(estimate["published_total"] / shape.published_parameters - 1) < 0.01
    # the full depth, built on the meta device, counted on its own
    full = build_shape(name)
    counted = parameter_breakdown(full.on_meta())
    assert {c: estimate[c] for c in COMPONENTS} == counted
    matrices = 1 if shape.tie_word_embeddings else 2
    added = matrices * shape.text["hidden_size"] * added_token_count()
    assert sum(counted.values()) == estimate["total"] == shape.published_parameters + added


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_cut_keeps_every_width(name):
    shape = SHAPES[name]
    config = build_shape(name, layers=2).config
    text, vision = config.text_config, config.vision_config
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads"):
        assert getattr(text, key) == shape.text[key]
    for key in ("hidden_size", "intermediate_size", "num_heads", "out_hidden_size", "patch_size"):
        assert getattr(vision, key) == shape.vision[key]
    assert text.num_hidden_layers == 2
    assert text.vocab_size == shape.published_vocab + added_token_count()
    stack = getattr(vision, "deepstack_visual_indexes", [])
    assert len(stack) == len(shape.deepstack) and stack == sorted(set(stack))
    assert all(i < vision.depth for i in stack)


def test_bad_requests_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown model shape 'qwen-9000'"):
        build_shape("qwen-9000")
    with pytest.raises(ValueError, match=r"layers must be in 1\.\.28, got 0"):
        build_shape("cosmos-reason1-7b", layers=0)
    with pytest.raises(ValueError, match=r"layers must be in 1\.\.36, got 37"):
        build_shape("cosmos-reason2-8b", layers=37)
    with pytest.raises(ValueError, match="dtype must be one of"):
        build_shape("cosmos-reason2-2b", dtype="int8")


def test_cli_refuses_a_preset_and_a_shape_together(tmp_path, capsys):
    from vla.cli import main

    with pytest.raises(SystemExit):
        main(["model", "init", "--preset", "tiny", "--shape", SMALLEST, "--out", str(tmp_path)])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--layers goes with --shape"):
        main(["model", "init", "--layers", "2", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--dtype goes with --shape"):
        main(["model", "init", "--dtype", "float32", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--arch does not go with --shape"):
        main(["model", "init", "--shape", SMALLEST, "--arch", "qwen3_vl", "--out",
              str(tmp_path)])


@pytest.fixture(scope="module")
def shape_dir(tmp_path_factory):
    """``vla model init --shape cosmos-reason2-2b --layers 1`` (bf16 weights, ~1 GB)."""
    from vla.cli import main

    out = tmp_path_factory.mktemp("shape") / "model"
    assert main(["model", "init", "--shape", SMALLEST, "--layers", "1", "--out", str(out)]) == 0
    return out


def _sample():
    from PIL import Image

    from vla.serving.parity import synthetic_camera_images

    cameras = ["front_left", "front_wide", "front_tele", "front_right"]
    sample = {"camera_names": cameras * 2, "frame_times": [-0.5] * 4 + [0.0] * 4,
              "history": [[-(20 - k) * 0.5, 0.0, 0.0, 10.0] for k in range(21)],
              "ego_speed": 10.0, "command": "follow_road"}
    images = [Image.fromarray(a) for a in synthetic_camera_images(8, 112, 224)]
    return sample, images


def test_saved_shape_loads_generates_and_takes_the_recipe_lora(shape_dir):
    import torch
    from peft import get_peft_model

    from vla.model.build import is_saved_model
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir
    from vla.model.lora import lora_config

    assert is_saved_model(shape_dir)
    meta = json.loads((shape_dir / "vla_model.json").read_text())
    assert meta["shape"] == SMALLEST and meta["layers"] == 1
    loaded = load_model_dir(shape_dir, dtype="bfloat16")
    rows = loaded.model.get_input_embeddings().weight.shape[0]
    assert rows == SHAPES[SMALLEST].published_vocab + added_token_count() == meta["vocab_size"]
    assert len(loaded.tokenizer) == meta["tokenizer_size"] < rows

    sample, images = _sample()
    out = generate_decision(loaded, {**sample, "images": images}, max_reasoning_tokens=6)
    assert out.error is None and out.decision is not None
    assert max(out.token_ids) < len(loaded.tokenizer)  # never a row past the tokenizer

    recipe = yaml.safe_load(RECIPE.read_text())
    assert recipe["lora_rank"] == 64
    model = get_peft_model(loaded.model, lora_config(recipe["lora_rank"], recipe["lora_alpha"],
                                                     recipe["lora_dropout"]))
    text = loaded.model.config.text_config
    hidden, head = text.hidden_size, text.head_dim
    q, kv = text.num_attention_heads * head, text.num_key_value_heads * head
    per_layer = 64 * ((hidden + q) + 2 * (hidden + kv) + (q + hidden))
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert sum(p.numel() for _, p in trainable) == per_layer * text.num_hidden_layers
    assert all("lora_" in n and "visual" not in n for n, _ in trainable)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[10, 11, 12]])).logits
    assert logits.shape == (1, 3, rows)


@pytest.mark.server
def test_vllm_serves_the_saved_shape_under_the_grammar(shape_dir, tmp_path):
    import httpx

    from vla.model.constraints import lark_grammar
    from vla.model.loading import grammar_for_dir, load_codec_of
    from vla.model.parser import parse_output
    from vla.model.prompting import messages
    from vla.serving.chat import DATA_URI_PARTS
    from vla.serving.vllm_server import ServerConfig, VLLMServer

    sample, images = _sample()
    grammar = grammar_for_dir(shape_dir, max_reasoning_tokens=8)
    config = ServerConfig(model=shape_dir, served_model_name="shape", max_model_len=2048,
                          images_per_prompt=len(images), dtype="float32", kv_cache_gib=2)
    with VLLMServer(config, log_path=tmp_path / "vllm.log") as server:
        body = {"model": "shape", "messages": messages(sample, images, DATA_URI_PARTS),
                "temperature": 0.0, "max_tokens": grammar.max_new_tokens,
                "skip_special_tokens": False,
                "structured_outputs": {"grammar": lark_grammar(grammar)}}
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=600)
    assert reply.status_code == 200, reply.text[:2000]
    text = reply.json()["choices"][0]["message"]["content"]
    codec = load_codec_of(shape_dir)
    assert len(parse_output(text, codec.num_tokens).trajectory_ids) == codec.num_tokens
