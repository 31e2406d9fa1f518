"""Prompts, the output grammar, the parser, the collator and `vla predict` on the tiny model."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vla.meta_action import LATERAL, LONGITUDINAL
from vla.model.parser import (
    MissingDelimiterError,
    ParseError,
    TrajectoryLengthError,
    TrajectoryTokenInReasoningError,
    UnexpectedTextError,
    UnknownMetaActionError,
    parse_output,
)
from vla.model.prompting import assistant_target

N = 12


def _good(reasoning="The lead car brakes, so decelerate.", lon="decelerate", lat="keep_lane",
          ids=tuple(range(N))):
    return assistant_target(reasoning, lon, lat, ids) + "<|im_end|>"


def test_a_well_formed_output_parses():
    d = parse_output(_good(), N)
    assert d.reasoning == "The lead car brakes, so decelerate."
    assert (d.meta_action.longitudinal, d.meta_action.lateral) == ("decelerate", "keep_lane")
    assert d.trajectory_ids == list(range(N))


@pytest.mark.parametrize("text, error", [
    (_good().replace("<|cot_start|>", ""), MissingDelimiterError),
    (_good().replace("<|cot_end|>", ""), MissingDelimiterError),
    (_good().replace("<|traj_future_end|>", ""), MissingDelimiterError),
    (_good(reasoning="brake <traj_3> now"), TrajectoryTokenInReasoningError),
    (_good(lon="hover"), UnknownMetaActionError),
    (_good().replace("decelerate, keep_lane", "decelerate keep_lane"), UnknownMetaActionError),
    (_good(ids=range(N - 1)), TrajectoryLengthError),
    (_good(ids=range(N + 1)), TrajectoryLengthError),
    (_good().replace("<traj_0>", "<traj_0> hello "), UnexpectedTextError),
    (_good().replace("<|im_end|>", " trailing<|im_end|>"), UnexpectedTextError),
])
def test_each_error_type_is_reported(text, error):
    with pytest.raises(error) as info:
        parse_output(text, N)
    assert isinstance(info.value, ParseError) and info.value.kind


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab ,<>|_0123456789") + [
    "<|cot_start|>", "<|cot_end|>", "<|meta_action_start|>", "<|meta_action_end|>",
    "<|traj_future_start|>", "<|traj_future_end|>", "<traj_5>", "keep_lane", "stop"]),
    max_size=60).map("".join))
def test_fuzzed_text_only_ever_raises_parse_errors(text):
    """Any other exception (IndexError, TypeError, ...) fails the test."""
    try:
        decision = parse_output(text, N)
    except ParseError as error:
        assert error.kind != "parse_error"  # always one of the specific subclasses
    else:
        assert len(decision.trajectory_ids) == N


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=80),
       st.sampled_from(LONGITUDINAL), st.sampled_from(LATERAL),
       st.lists(st.integers(0, 2047), min_size=N, max_size=N))
def test_any_well_formed_output_round_trips(reasoning, lon, lat, ids):
    d = parse_output(_good(reasoning, lon, lat, ids), N)
    assert (d.meta_action.longitudinal, d.meta_action.lateral, d.trajectory_ids) == \
        (lon, lat, ids)
    assert d.reasoning == reasoning.strip()


@pytest.fixture(scope="module")
def grammar(tiny_model_dir):
    from vla.model.loading import grammar_for_dir

    return grammar_for_dir(tiny_model_dir, max_reasoning_tokens=20)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_any_walk_through_the_grammar_parses(grammar, tiny_model_dir, rnd):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    state, tokens = grammar.initial(), []
    for _ in range(200):
        allowed = np.flatnonzero(grammar.allowed(state))
        token = int(allowed[rnd.randrange(len(allowed))])
        tokens.append(token)
        if token == grammar.ids.end_of_turn:
            break
        state = grammar.advance(state, token)
    d = parse_output(tok.decode(tokens, skip_special_tokens=False), grammar.n)
    assert len(d.trajectory_ids) == grammar.n


CAMERAS = ["front_left", "front", "front_right"]


def _sample(i=0, frames=2):
    """A sample of 3 cameras over ``frames`` frames 0.5 s apart (oldest first, the cameras in
    rig order within a frame)."""
    from vla.serving.parity import synthetic_camera_images

    times = [0.5 * (k - frames + 1) for k in range(frames) for _ in CAMERAS]
    t = np.arange(1, 61) / 10
    future = np.stack([10 * t, 0 * t, 0 * t], axis=1)
    return {"sample_id": f"s{i}", "images": [
                __import__("PIL.Image").Image.fromarray(a)
                for a in synthetic_camera_images(len(times), 96, 160, i)],
            "camera_names": CAMERAS * frames, "frame_times": times,
            "history": [[-(20 - k) * 0.5, 0.0, 0.0, 10.0] for k in range(21)],
            "ego_speed": 10.0, "ego_accel": 0.0, "ego_yaw_rate": 0.0,
            "command": "follow_road", "future": future.tolist(),
            "reasoning": "The lane ahead is clear, so keep speed and keep the lane.",
            "decision_lon": "keep_speed", "decision_lat": "keep_lane"}


def _recorded_media(sample):
    """The user turn's media parts, each with the frames it carries."""
    from vla.model.prompting import MediaParts, messages

    parts = MediaParts(image=lambda frame: {"type": "image", "frames": [frame]},
                       video=lambda frames: {"type": "video", "frames": list(frames)})
    content = messages(sample, sample["images"], parts)[1]["content"]
    lines = [p["text"].strip() for p in content if p["type"] == "text"][1:-1]  # camera lines
    return [p for p in content if p["type"] != "text"], lines


def test_each_camera_is_one_video_of_its_frames_in_rig_order():
    sample = _sample(0)
    media, lines = _recorded_media(sample)
    images = sample["images"]
    assert [m["type"] for m in media] == ["video"] * 3
    assert [m["frames"] for m in media] == [[images[c], images[3 + c]] for c in range(3)]
    assert lines == [f"{c} camera, frames at -0.5 s and +0.0 s:" for c in CAMERAS]
    media, lines = _recorded_media(_sample(0, frames=4))
    assert [len(m["frames"]) for m in media] == [4] * 3
    assert lines[0] == "front_left camera, frames at -1.5 s, -1.0 s, -0.5 s and +0.0 s:"


@pytest.mark.parametrize("frames", [1, 3])
def test_a_frame_count_that_fills_no_temporal_patch_keeps_still_images(frames):
    sample = _sample(0, frames=frames)
    media, lines = _recorded_media(sample)
    assert [m["type"] for m in media] == ["image"] * 3 * frames
    assert [m["frames"][0] for m in media] == sample["images"]  # the sample's order
    assert lines[:3] == [f"{c} camera at t={0.5 * (1 - frames):+.1f}s:" for c in CAMERAS]


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(images=s["images"][:5]), "s0: 5 images but 6 camera names"),
    (lambda s: s.update(camera_names=CAMERAS * 2 + ["front"], frame_times=[-0.5] * 3 + [0.0] * 4,
                        images=s["images"] + s["images"][:1]),
     r"s0: every camera must have the same number of frames.*'front': 3"),
    (lambda s: s.update(frame_times=[0.0] * 3 + [-0.5] * 3), "camera front_left's frame times "
                                                             "must increase"),
])
def test_media_that_do_not_pair_up_are_refused_naming_the_sample(change, message):
    sample = _sample(0)
    change(sample)
    with pytest.raises(ValueError, match=message):
        _recorded_media(sample)


def test_processor_gets_each_camera_as_one_temporal_patch(tiny_model_dir):
    from transformers import AutoProcessor

    from vla.model.prompting import chat_prompt
    from vla.model.visual_inputs import processor_inputs, visual_inputs

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    for frames, grid_t in ((2, 1), (4, 2)):
        sample = _sample(0, frames=frames)
        inputs = processor_inputs(processor, [chat_prompt(processor, sample, sample["images"])],
                                  [visual_inputs(sample, sample["images"])])
        assert "pixel_values" not in inputs
        assert inputs["video_grid_thw"][:, 0].tolist() == [grid_t] * 3
        # frames 0.5 s apart: 2 frames per temporal patch, 1.0 s between patches
        assert inputs["second_per_grid_ts"].tolist() == [1.0] * 3
    sample = _sample(0, frames=1)
    inputs = processor_inputs(processor, [chat_prompt(processor, sample, sample["images"])],
                              [visual_inputs(sample, sample["images"])])
    assert "pixel_values_videos" not in inputs and len(inputs["image_grid_thw"]) == 3


def test_collator_masks_the_prompt_and_counts_tokens(tiny_model_dir):
    from vla.model.collator import IGNORE, SPANS, Collator
    from vla.model.loading import load_model_dir

    loaded = load_model_dir(tiny_model_dir)
    collator = Collator(loaded.processor, loaded.codec)
    batch = collator([_sample(0), _sample(1)])
    labels, ids = batch["labels"], batch["input_ids"]
    for row in range(2):
        kept = ids[row][labels[row] != IGNORE].tolist()
        text = loaded.tokenizer.decode(kept, skip_special_tokens=False)
        assert text.startswith("<|cot_start|>The lane ahead is clear")
        assert text.endswith("<|traj_future_end|><|im_end|>")
        assert parse_output(text, loaded.codec.num_tokens).meta_action.lateral == "keep_lane"
    counts = collator.token_counts
    assert counts["trajectory"] == 2 * loaded.codec.num_tokens
    assert counts["image"] > 0 and counts["reasoning"] > 0 and counts["meta_action"] > 0
    assert int((labels != IGNORE).sum()) == sum(
        counts[k] for k in ("reasoning", "meta_action", "trajectory")) + 2 * 7
    spans = batch.pop("span_ids")
    assert bool(((spans != 0) == (labels != IGNORE)).all())
    decoded = {name: loaded.tokenizer.decode(ids[0][spans[0] == sid].tolist(),
                                             skip_special_tokens=False)
               for name, sid in SPANS.items()}
    assert decoded["reasoning"].endswith("keep the lane.<|cot_end|>")
    assert decoded["meta_action"] == ("<|meta_action_start|>keep_speed, keep_lane"
                                      "<|meta_action_end|>")
    assert decoded["trajectory"].startswith("<|traj_future_start|><traj_")
    assert int((spans[0] == SPANS["trajectory"]).sum()) == loaded.codec.num_tokens + 3
    # 2 samples x 3 cameras, each camera's 2 frames one video of one temporal patch
    grid = batch["video_grid_thw"]
    assert grid.tolist() == [grid[0].tolist()] * 6 and int(grid[0, 0]) == 1
    assert "pixel_values" not in batch
    assert batch["pixel_values_videos"].shape[0] == int(grid.prod(-1).sum())
    video_pad = loaded.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert counts["image"] == int((ids == video_pad).sum()) == int(grid.prod(-1).sum()) // 4
    # half the tokens of the same frames given as still images
    still = loaded.processor.image_processor(images=_sample(0)["images"][:1])["image_grid_thw"]
    assert 2 * counts["image"] == 2 * 6 * int(still.prod()) // 4
    blank = Collator(loaded.processor, loaded.codec, blank_images=True)([_sample(0)])
    patches = blank["pixel_values_videos"]
    assert bool((patches == patches[0]).all())  # every patch of every video frame is the same
    assert not bool((batch["pixel_values_videos"] == batch["pixel_values_videos"][0]).all())
    loss = loaded.model(**batch).loss
    assert np.isfinite(loss.item())


def test_constrained_generation_of_a_random_model_parses(tiny_model_dir):
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir

    loaded = load_model_dir(tiny_model_dir)
    for seed, frames in ((0, 2), (1, 1)):  # cameras as videos; a 1-frame rig's still images
        gen = generate_decision(loaded, _sample(seed, frames), do_sample=True, seed=seed,
                                max_reasoning_tokens=24)
        assert gen.error is None, gen.text
        assert gen.decision.trajectory.shape == (60, 3)
        assert np.isfinite(gen.decision.trajectory).all()


def test_predict_cli_prints_a_parsed_decision(tiny_model_dir, small_data_dir, tmp_path):
    trace = tmp_path / "trace.jsonl"
    out = subprocess.run([sys.executable, "-m", "vla.cli", "predict", "--model",
                          str(tiny_model_dir), "--data", str(small_data_dir), "--index", "0",
                          "--json", "--trace", str(trace)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["parsed"] is True and record["error"] is None
    assert len(record["decision"]["trajectory"]) == 60
    assert json.loads(trace.read_text().splitlines()[-1])["sample_id"] == record["sample_id"]


def test_inject_adds_tokens_to_a_plain_checkpoint(tmp_path):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vla.model.build import build_model, build_processor
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir
    from vla.model.presets import get_preset
    from vla.model.tokenizer import project_corpus, train_tokenizer

    preset = get_preset("tiny")
    tok = train_tokenizer(project_corpus(), preset.vocab_size, with_delimiters=False)
    assert "<|cot_start|>" not in tok.get_vocab()
    base = tmp_path / "base"
    model = build_model(preset, tok)
    model.save_pretrained(base)
    build_processor(preset, tok).save_pretrained(base)
    out = subprocess.run([sys.executable, "-m", "vla.cli", "model", "inject", "--base",
                          str(base), "--out", str(tmp_path / "injected")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = load_model_dir(tmp_path / "injected")
    vocab = loaded.tokenizer.get_vocab()
    assert "<|cot_start|>" in vocab and f"<traj_{loaded.codec.vocab_size - 1}>" in vocab
    old = Qwen2_5_VLForConditionalGeneration.from_pretrained(base).get_input_embeddings().weight
    new = loaded.model.get_input_embeddings().weight
    assert new.shape[0] == len(loaded.tokenizer) > old.shape[0]
    assert torch.equal(new[:old.shape[0]], old)
    added = new[old.shape[0]:]
    assert torch.isfinite(added).all() and added.abs().sum() > 0
    gen = generate_decision(loaded, _sample(0), max_reasoning_tokens=16)
    assert gen.error is None, gen.text


def test_inject_reinitialises_the_padding_rows_its_tokens_take(tmp_path):
    """A real checkpoint's embedding is larger than its tokenizer (Qwen2.5-VL: 152,064 rows
    for 151,665 tokens): the first added tokens take padding rows, which must start at the
    mean like the grown rows, and stage 1's new-rows scope must train them."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from vla.model.build import build_model, build_processor
    from vla.model.inject import inject
    from vla.model.presets import get_preset
    from vla.model.tokenizer import project_corpus, train_tokenizer
    from vla.training.run import _restrict_to_new_rows

    preset = get_preset("tiny")
    tok = train_tokenizer(project_corpus(), preset.vocab_size, with_delimiters=False)
    base = tmp_path / "base"
    model = build_model(preset, tok)
    n_tok, padding = len(tok), 40
    model.resize_token_embeddings(n_tok + padding, mean_resizing=False)
    with torch.no_grad():  # padding rows far from the rest, as an untrained checkpoint's may be
        for m in (model.get_input_embeddings(), model.get_output_embeddings()):
            m.weight[n_tok:] = 7.0
    model.save_pretrained(base)
    build_processor(preset, tok).save_pretrained(base)
    meta = inject(base, tmp_path / "injected")
    assert meta["first_new_id"] == n_tok and meta["vocab_before"] == n_tok + padding
    injected = Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path / "injected")
    for m in (injected.get_input_embeddings(), injected.get_output_embeddings()):
        w = m.weight.detach()
        taken = w[n_tok:n_tok + padding]
        assert (taken - w[:n_tok].mean(0)).abs().max() < 0.05  # near the mean, not 7.0
        assert torch.unique(taken, dim=0).shape[0] == padding  # and not identical
    _restrict_to_new_rows(injected, meta["first_new_id"])
    emb = injected.get_input_embeddings().weight
    emb.sum().backward()
    assert emb.grad[:n_tok].abs().sum() == 0 and (emb.grad[n_tok:] != 0).all()
