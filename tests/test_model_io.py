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


def _sample(i=0):
    from vla.serving.parity import synthetic_camera_images

    names = ["front_left", "front", "front_right"] * 2
    t = np.arange(1, 61) / 10
    future = np.stack([10 * t, 0 * t, 0 * t], axis=1)
    return {"sample_id": f"s{i}", "images": [__import__("PIL.Image").Image.fromarray(a)
                                             for a in synthetic_camera_images(6, 96, 160, i)],
            "camera_names": names, "frame_times": [-0.5] * 3 + [0.0] * 3,
            "history": [[-(20 - k) * 0.5, 0.0, 0.0, 10.0] for k in range(21)],
            "ego_speed": 10.0, "ego_accel": 0.0, "ego_yaw_rate": 0.0,
            "command": "follow_road", "future": future.tolist(),
            "reasoning": "The lane ahead is clear, so keep speed and keep the lane.",
            "decision_lon": "keep_speed", "decision_lat": "keep_lane"}


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
    blank = Collator(loaded.processor, loaded.codec, blank_images=True)([_sample(0)])
    patches = blank["pixel_values"]
    assert bool((patches == patches[0]).all())  # every patch of every image is the same
    assert not bool((batch["pixel_values"] == batch["pixel_values"][0]).all())
    loss = loaded.model(**batch).loss
    assert np.isfinite(loss.item())


def test_constrained_generation_of_a_random_model_parses(tiny_model_dir):
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir

    loaded = load_model_dir(tiny_model_dir)
    for seed in range(2):
        gen = generate_decision(loaded, _sample(seed), do_sample=True, seed=seed,
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
