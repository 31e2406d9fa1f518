"""Qwen3-VL as the second architecture: the tiny preset builds either, and the pipeline runs on
a tiny Qwen3-VL (prediction, stage 2 training, merge, GRPO's log-probabilities, expected-entry
decoding); injection refuses a checkpoint of another architecture; and, on a real vLLM server
of the tiny Qwen3-VL with a LoRA adapter, greedy decoding equals transformers token for token.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vla.model.arch import ARCHITECTURES, arch_of_config, arch_of_dir, model_class
from vla.model.presets import ModelPreset, get_preset

NEAR_TIE = 1e-3  # logit gap below which float32 rounding may pick either token


@pytest.fixture(scope="module")
def qwen3_adapter_dir(tiny_qwen3_model_dir, tmp_path_factory):
    """A rank-8 LoRA adapter with random non-zero weights (seed 0) on the tiny Qwen3-VL."""
    from vla.model.lora import random_adapter

    return random_adapter(tiny_qwen3_model_dir, tmp_path_factory.mktemp("qwen3") / "adapter")


@pytest.fixture(scope="module")
def samples(small_data_dir):
    from vla.data.build import load_dataset_dir

    dataset, _ = load_dataset_dir(small_data_dir)
    return [dataset["test"][i] for i in range(3)]


def test_the_registry_maps_both_architectures():
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen3VLForConditionalGeneration

    assert model_class("qwen2_5_vl") is Qwen2_5_VLForConditionalGeneration
    assert model_class("qwen3_vl") is Qwen3VLForConditionalGeneration
    assert {name: a.token_side_px for name, a in ARCHITECTURES.items()} == {
        "qwen2_5_vl": 28, "qwen3_vl": 32}
    assert arch_of_config({"model_type": "qwen3_vl"}) == "qwen3_vl"
    with pytest.raises(ValueError, match="model_type 'llava' is not supported.*qwen3_vl"):
        arch_of_config({"model_type": "llava"})
    with pytest.raises(ValueError, match="unknown architecture 'qwen9'"):
        get_preset("tiny", "qwen9")


def test_qwen3_presets_count_32_pixel_tokens():
    tiny = get_preset("tiny", "qwen3_vl")
    assert tiny.arch == "qwen3_vl" and tiny.patch_size == 16 and tiny.token_side_px == 32
    # the default rig's 224x112 image goes to the nearest whole tokens: 224x128, 7x4 tokens
    assert tiny.image_size_seen(224, 112) == (224, 128) and tiny.tokens_per_image(224, 112) == 28
    assert tiny.max_tokens_per_image == 28
    assert tiny.mrope_section == [12, 10, 10]  # interleaved: Qwen3-VL's split of 64 dims
    q25 = get_preset("tiny")  # Qwen2.5-VL unchanged: 28-pixel tokens, consecutive M-RoPE
    assert q25.arch == "qwen2_5_vl" and q25.tokens_per_image(224, 112) == 32
    assert q25.mrope_section == [8, 12, 12] and q25.vision_window_px == 112
    assert get_preset("tiny").patch_size == 14 and get_preset("tiny").deepstack_layers == ()
    for name in ("tiny", "small"):  # same language and vision sizes as the Qwen2.5-VL preset
        q25, q3 = get_preset(name), get_preset(name, "qwen3_vl")
        assert (q3.hidden_size, q3.num_layers, q3.vision_depth) == (
            q25.hidden_size, q25.num_layers, q25.vision_depth)


@pytest.mark.parametrize("override, message", [
    ({"deepstack_layers": (2,)}, r"each in \[0, 1\]"),
    ({"deepstack_layers": (1, 0)}, "increasing order"),
    ({"vision_position_grid": 0}, "vision_position_grid"),
    ({"arch": "qwen2_5_vl", "vision_window_px": 128}, "deepstack_layers is a Qwen3-VL setting"),
    ({"arch": "llava"}, "unknown architecture 'llava'"),
])
def test_invalid_qwen3_preset_is_rejected(override, message):
    fields = {**get_preset("tiny", "qwen3_vl").__dict__, **override}
    with pytest.raises(ValueError, match=message):
        ModelPreset(**fields)


def test_init_builds_either_architecture(tiny_model_dir, tiny_qwen3_model_dir):
    from transformers import AutoProcessor

    from vla.model.build import VLA_META_FILE, is_saved_model

    built = ((tiny_model_dir, "qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration"),
             (tiny_qwen3_model_dir, "qwen3_vl", "Qwen3VLForConditionalGeneration"))
    for model_dir, arch, cls in built:
        assert is_saved_model(model_dir) and arch_of_dir(model_dir) == arch
        config = json.loads((model_dir / "config.json").read_text())
        assert config["architectures"] == [cls]
        meta = json.loads((model_dir / VLA_META_FILE).read_text())
        assert meta["arch"] == arch and 1e6 < meta["parameters"] < 1e7
    config = json.loads((tiny_qwen3_model_dir / "config.json").read_text())
    assert config["vision_config"]["deepstack_visual_indexes"] == [0]
    assert config["vision_config"]["patch_size"] == 16
    rope = config["text_config"]["rope_parameters"]
    assert rope["mrope_interleaved"] is True and rope["mrope_section"] == [12, 10, 10]
    processor = AutoProcessor.from_pretrained(tiny_qwen3_model_dir)
    assert type(processor).__name__ == "Qwen3VLProcessor"
    assert type(processor.video_processor).__name__ == "Qwen3VLVideoProcessor"


def test_a_camera_video_frame_is_resized_as_the_same_image(tiny_qwen3_model_dir):
    """A 2-frame camera video reaches the Qwen3-VL vision tower at the size the same picture
    has as an image (224x112 -> 224x128: 8x14 patches, 28 tokens a frame pair)."""
    from transformers import AutoProcessor

    from vla.model.prompting import chat_prompt
    from vla.model.visual_inputs import processor_inputs, visual_inputs
    from vla.serving.parity import synthetic_camera_images

    processor = AutoProcessor.from_pretrained(tiny_qwen3_model_dir)
    frames = [Image.fromarray(a) for a in synthetic_camera_images(6, 112, 224)]
    image = processor.image_processor(images=frames[:1], return_tensors="pt")
    assert image["image_grid_thw"].tolist() == [[1, 8, 14]]
    sample = {"sample_id": "s", "camera_names": ["front_left", "front", "front_right"] * 2,
              "frame_times": [-0.5] * 3 + [0.0] * 3,
              "history": [[-(20 - k) * 0.5, 0.0, 0.0, 10.0] for k in range(21)],
              "ego_speed": 10.0, "command": "follow_road"}
    text = chat_prompt(processor, sample, frames)
    batch = processor_inputs(processor, [text], [visual_inputs(sample, frames)])
    assert batch["video_grid_thw"].tolist() == [[1, 8, 14]] * 3
    ids = batch["input_ids"][0].tolist()
    assert ids.count(processor.video_token_id) == 3 * 28
    # each temporal patch gets its mean frame time as text, between two vision markers
    decoded = processor.tokenizer.decode(ids)
    assert decoded.count("<|vision_start|><0.2 seconds><|vision_start|><|video_pad|>") == 3


def test_predict_cli_parses_for_qwen3(tiny_qwen3_model_dir, small_data_dir, tmp_path):
    out = subprocess.run([sys.executable, "-m", "vla.cli", "predict", "--model",
                          str(tiny_qwen3_model_dir), "--data", str(small_data_dir), "--index",
                          "0", "--json", "--trace", str(tmp_path / "trace.jsonl")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["parsed"] is True and record["error"] is None
    assert len(record["decision"]["trajectory"]) == 60


def test_stage2_run_and_merge_on_qwen3(tiny_qwen3_model_dir, small_data_dir, samples, tmp_path):
    import torch

    from vla.model.generate import generate_decision, prompt_inputs
    from vla.model.loading import load_model_dir
    from vla.model.merge import merge_adapter
    from vla.training.config import RunConfig
    from vla.training.run import run_stage

    result = run_stage(RunConfig(stage="sft", model=str(tiny_qwen3_model_dir),
                                 data=str(small_data_dir), out=str(tmp_path / "run"),
                                 max_steps=2, batch_size=2, eval_samples=0, save_steps=10,
                                 max_reasoning_tokens=16, lora_rank=4))
    assert result["global_step"] == 2
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    merged = merge_adapter(tiny_qwen3_model_dir, adapter, tmp_path / "merged")
    assert arch_of_dir(merged) == "qwen3_vl"
    loaded = load_model_dir(merged)
    with_adapter = load_model_dir(tiny_qwen3_model_dir, adapter=adapter)
    inputs = prompt_inputs(loaded.processor, samples[0])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(**inputs).logits,
                                   with_adapter.model(**inputs).logits, atol=1e-4, rtol=0)
    gen = generate_decision(loaded, samples[0], max_reasoning_tokens=16)
    assert gen.error is None, gen.text


def test_expected_entry_decoding_parses_on_qwen3(tiny_qwen3_model_dir, samples):
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir

    loaded = load_model_dir(tiny_qwen3_model_dir)
    gen = generate_decision(loaded, samples[1], max_reasoning_tokens=12,
                            trajectory_decoding="expected")
    assert gen.error is None, gen.text
    assert np.isfinite(gen.decision.trajectory).all()


def test_grpo_logprobs_are_those_generate_sampled_with_on_qwen3(tiny_qwen3_model_dir,
                                                                qwen3_adapter_dir, samples):
    """GRPO's policy on a Qwen3-VL base: the log-probabilities of its update equal those
    transformers ``generate`` reported for the completions it sampled (so the prompt's video
    positions, DeepStack and the completion line up in both)."""
    import torch
    from transformers import LogitsProcessorList

    from vla.model.constraints import GrammarLogitsProcessor
    from vla.model.generate import prompt_inputs
    from vla.rl.grpo import PolicyModel

    policy = PolicyModel(str(tiny_qwen3_model_dir), str(qwen3_adapter_dir), 0.05, 0.7, 0.9)
    policy.model.eval()
    inputs = prompt_inputs(policy.processor, samples[0])
    prompt_len = inputs["input_ids"].shape[1]
    grammar = policy.grammar
    torch.manual_seed(0)
    with torch.no_grad():
        out = policy.model.generate(
            **inputs, max_new_tokens=grammar.max_new_tokens, do_sample=True, temperature=0.7,
            top_p=0.9, top_k=None, num_return_sequences=2,
            logits_processor=LogitsProcessorList([GrammarLogitsProcessor(grammar, prompt_len)]),
            eos_token_id=grammar.ids.end_of_turn,
            pad_token_id=policy.processor.tokenizer.pad_token_id,
            return_dict_in_generate=True, output_scores=True)
        scores = policy.model.compute_transition_scores(out.sequences, out.scores,
                                                        normalize_logits=True)
    completions, reported = [], []
    for row, row_scores in zip(out.sequences[:, prompt_len:].tolist(), scores, strict=True):
        end = row.index(grammar.ids.end_of_turn) + 1
        completions.append(row[:end])
        reported.append(row_scores[:end])
    group, comp, _mask, allowed = policy.group_inputs(samples[0], completions)
    with torch.no_grad():
        lp = policy.logprobs(group, comp, allowed)
    for i, want in enumerate(reported):
        torch.testing.assert_close(lp[i, :len(want)], want, atol=1e-4, rtol=0)


def test_inject_refuses_a_checkpoint_of_another_architecture(tiny_qwen3_model_dir, tmp_path):
    from vla.model.inject import inject

    with pytest.raises(ValueError, match="model_type 'qwen3_vl'.*not qwen2_5_vl"):
        inject(tiny_qwen3_model_dir, tmp_path / "out", arch="qwen2_5_vl")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "llava"}')
    out = subprocess.run([sys.executable, "-m", "vla.cli", "model", "inject", "--base",
                          str(other), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode != 0
    assert "model_type 'llava' is not supported" in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def test_inject_adds_tokens_to_a_plain_qwen3_checkpoint(tmp_path):
    import torch

    from vla.model.build import build_model, build_processor
    from vla.model.inject import inject
    from vla.model.loading import load_model_dir
    from vla.model.tokenizer import project_corpus, train_tokenizer

    preset = get_preset("tiny", "qwen3_vl")
    tok = train_tokenizer(project_corpus(), preset.vocab_size, with_delimiters=False)
    base = tmp_path / "base"
    model = build_model(preset, tok)
    model.save_pretrained(base)
    build_processor(preset, tok).save_pretrained(base)
    meta = inject(base, tmp_path / "injected", arch="qwen3_vl")
    assert meta["arch"] == "qwen3_vl" and meta["vocab_after"] > meta["vocab_before"]
    loaded = load_model_dir(tmp_path / "injected")
    old = model.get_input_embeddings().weight
    new = loaded.model.get_input_embeddings().weight
    assert torch.equal(new[:old.shape[0]], old)
    assert "<|cot_start|>" in loaded.tokenizer.get_vocab()


# --- on a real vLLM server of the tiny Qwen3-VL ---------------------------------------------


@pytest.fixture(scope="module")
def qwen3_server(tiny_qwen3_model_dir, qwen3_adapter_dir, tmp_path_factory):
    """``vllm serve`` of the tiny Qwen3-VL (served as ``tiny3``) on 127.0.0.1 with the random
    adapter as ``adapter3``; stopped by its process group at the end of the module."""
    from vla.serving.client import default_images_per_prompt
    from vla.serving.vllm_server import ServerConfig, VLLMServer

    server = VLLMServer(ServerConfig(model=tiny_qwen3_model_dir, served_model_name="tiny3",
                                     images_per_prompt=default_images_per_prompt(),
                                     max_model_len=4096, enable_lora=True, max_lora_rank=16,
                                     adapters=(("adapter3", str(qwen3_adapter_dir)),)),
                        log_path=tmp_path_factory.mktemp("vllm_qwen3") / "vllm.log")
    server.start()
    yield server
    server.stop()
    assert server.alive_pids() == [], "vLLM processes outlived the server's stop"


def _agreeing_tokens(tokens: list[int], expected) -> int:
    """How many leading tokens vLLM and transformers share; the engines may only part at a
    near-tie of a random-weight model's logits."""
    diff = next((i for i, (a, b) in enumerate(zip(tokens, expected.token_ids, strict=False))
                 if a != b), None)
    if diff is None:
        assert tokens == expected.token_ids
        return len(tokens)
    assert expected.margins[diff] < NEAR_TIE, (diff, expected.margins[diff])
    return diff


@pytest.mark.server
def test_vllm_sees_the_prompt_transformers_sees_on_qwen3(qwen3_server, tiny_qwen3_model_dir):
    from vla.serving.parity import hf_forward, query_server, synthetic_camera_images

    images = synthetic_camera_images(2)
    expected = hf_forward(tiny_qwen3_model_dir, images)
    reply = query_server(qwen3_server.url, "tiny3", images, max_tokens=4)
    assert reply["prompt_token_ids"] == expected.prompt_ids
    first = reply["choices"][0]["token_ids"][0]
    assert reply["choices"][0]["logprobs"]["content"][0]["logprob"] == pytest.approx(
        expected.logprobs[first], abs=1e-3)


@pytest.mark.server
@pytest.mark.parametrize("served", ["tiny3", "adapter3"])
def test_greedy_vllm_equals_transformers_token_for_token_on_qwen3(
        qwen3_server, tiny_qwen3_model_dir, qwen3_adapter_dir, samples, served):
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir
    from vla.serving.client import VLAClient

    loaded = load_model_dir(tiny_qwen3_model_dir)
    if served == "adapter3":
        from peft import PeftModel

        loaded.model = PeftModel.from_pretrained(loaded.model, qwen3_adapter_dir).eval()
    client = VLAClient.for_model_dir(qwen3_server.url, served, tiny_qwen3_model_dir, retries=1)
    compared = 0
    for sample in samples:
        expected = generate_decision(loaded, sample, with_margins=True)
        got = client.decide_sync(sample, n=1, temperature=0.0, max_tokens=200)[0]
        assert got.decision is not None
        compared += _agreeing_tokens(got.token_ids, expected)
    assert compared >= 150


@pytest.mark.server
def test_expected_entry_decoding_on_the_server_equals_transformers_on_qwen3(
        qwen3_server, tiny_qwen3_model_dir, samples):
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir
    from vla.serving.client import VLAClient

    loaded = load_model_dir(tiny_qwen3_model_dir)
    client = VLAClient.for_model_dir(qwen3_server.url, "tiny3", tiny_qwen3_model_dir, retries=1)
    compared = 0
    for sample in samples:
        expected = generate_decision(loaded, sample, with_margins=True,
                                     trajectory_decoding="expected")
        got = client.decide_sync(sample, n=1, temperature=0.0, max_tokens=200,
                                 trajectory_decoding="expected")[0]
        assert got.decision is not None
        compared += _agreeing_tokens(got.token_ids, expected)
    assert compared >= 150
