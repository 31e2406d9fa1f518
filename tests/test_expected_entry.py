"""Expected-entry decoding of trajectory tokens: the rule on hand-made logits, then on the tiny
model, where every written trajectory token is checked against a teacher-forced forward pass."""

import numpy as np
import pytest
import torch

from vla.model.expected_entry import ExpectedEntryLogitsProcessor, check_trajectory_decoding

INF = float("inf")


def _processor():
    # four entries on a line at 0, 1, 2 and 10 (two feature dims, the second constant)
    feats = np.array([[0, 1], [1, 1], [2, 1], [10, 1]], dtype=np.float32)
    return ExpectedEntryLogitsProcessor(feats, np.array([5, 6, 7, 8]))


def test_a_trajectory_step_writes_the_entry_nearest_the_expected_one():
    p = np.array([0.4, 1e-9, 0.3, 0.3])  # greedy: entry 0; mean 0.6 + 3.0 = 3.6 -> entry 2
    scores = torch.full((2, 10), -INF)
    scores[0, 5:9] = torch.tensor(np.log(p), dtype=torch.float32)
    scores[1, [2, 5, 6]] = torch.tensor([0.0, 3.0, 1.0])  # a non-trajectory token is allowed
    before = scores.clone()
    out = _processor()(None, scores)
    assert int(before[0].argmax()) == 5
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [7]
    assert out[0, 7] == before[0, 7]  # the chosen token keeps its logit
    assert torch.equal(out[1], before[1])  # not a trajectory step: untouched


def test_entries_the_grammar_masked_are_never_chosen():
    scores = torch.full((1, 10), -INF)
    # p = 0.91 / 0.09 on entries 0 and 3: the mean (0.9) is nearest entry 1, which is masked
    scores[0, [5, 8]] = torch.tensor([0.0, np.log(0.1)], dtype=torch.float32)
    scores[0, 6] = -INF
    scores[0, 7] = -INF
    out = _processor().apply(scores.clone())
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [5]


def test_the_rule_matches_a_numpy_recomputation_on_random_logits():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(32, 5)).astype(np.float32)
    ids = np.arange(100, 132)
    logits = rng.normal(scale=3.0, size=(16, 32))
    scores = torch.full((16, 140), -INF)
    scores[:, 100:132] = torch.tensor(logits, dtype=torch.float32)
    out = ExpectedEntryLogitsProcessor(feats, ids).apply(scores)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    mean = probs @ feats
    want = np.linalg.norm(mean[:, None] - feats[None], axis=-1).argmin(1) + 100
    assert out.argmax(1).numpy().tolist() == want.tolist()
    assert (torch.isfinite(out).sum(1) == 1).all()
    assert len(set(want.tolist())) > 1  # the rows do not all agree by construction


def test_bad_settings_are_refused(tiny_model_dir):
    from vla.model.expected_entry import entry_features_of
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir
    from vla.trajectory.registry import make_codec

    with pytest.raises(ValueError, match="trajectory decoding must be one of"):
        check_trajectory_decoding("beam")
    with pytest.raises(ValueError, match="features"):
        ExpectedEntryLogitsProcessor(np.zeros((3, 2)), np.arange(4))
    with pytest.raises(ValueError, match="not entries of one space"):
        entry_features_of(make_codec("waypoint"))
    loaded = load_model_dir(tiny_model_dir)
    from test_model_io import _sample
    with pytest.raises(ValueError, match="constrained greedy"):
        generate_decision(loaded, _sample(0), do_sample=True, trajectory_decoding="expected")


def test_generation_writes_the_expected_entry_at_every_trajectory_step(tiny_model_dir):
    """Re-run the model on the written output (teacher forcing) and recompute each choice."""
    from test_model_io import _sample

    from vla.model.expected_entry import entry_features_of
    from vla.model.generate import generate_decision, prompt_inputs
    from vla.model.loading import load_model_dir

    loaded = load_model_dir(tiny_model_dir)
    sample = _sample(1)
    gen = generate_decision(loaded, sample, max_reasoning_tokens=12,
                            trajectory_decoding="expected")
    assert gen.error is None, gen.text
    greedy = generate_decision(loaded, sample, max_reasoning_tokens=12)
    inputs = prompt_inputs(loaded.processor, sample)
    new = torch.tensor([gen.token_ids])
    full = {**inputs, "input_ids": torch.cat([inputs["input_ids"], new], dim=1)}
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    if "mm_token_type_ids" in inputs:  # generated tokens are text
        full["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"],
                                               torch.zeros_like(new)], dim=1)
    with torch.no_grad():
        logits = loaded.model(**full).logits[0]
    tokenizer = loaded.tokenizer
    start = gen.token_ids.index(tokenizer.convert_tokens_to_ids("<|traj_future_start|>"))
    codec = loaded.codec
    traj_ids = np.array([tokenizer.convert_tokens_to_ids(f"<traj_{i}>")
                         for i in range(codec.vocab_size)])
    feats = entry_features_of(codec)
    prompt_len = inputs["input_ids"].shape[1]
    for step in range(codec.num_tokens):
        position = start + 1 + step  # index of this trajectory token in gen.token_ids
        row = logits[prompt_len + position - 1, traj_ids].double().numpy()
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        nearest = np.linalg.norm(feats - probs @ feats, axis=1).argmin()
        assert gen.token_ids[position] == traj_ids[nearest], step
    # the reasoning and the meta-action are greedy's; the trajectory tokens are not
    assert gen.token_ids[:start + 1] == greedy.token_ids[:start + 1]
    assert gen.decision.trajectory_ids != greedy.decision.trajectory_ids
