"""GRPO against a real vLLM server: the served adapter changes between steps, the rewards are
those of the rollouts, and a re-run resumes. The update's log-probabilities are those of the
distribution sampled from (grammar, temperature, top-p; forced tokens out of the loss), and the
KL reference is the starting SFT adapter."""

import json

import httpx
import numpy as np
import pytest

from vla.rl.grpo import (
    GRPOConfig,
    PolicyModel,
    _update,
    clipped_token_loss,
    group_advantages,
    masked_logprobs,
    replay_grammar,
    run_grpo,
)
from vla.serving.vllm_server import ServerConfig, VLLMServer, lora_rank_of

TEMPERATURE, TOP_P = 0.7, 0.9


@pytest.fixture(scope="module")
def adapter_dir(lora_adapter_dir):
    """The SFT adapter GRPO starts from: the session's random rank-8 adapter."""
    return lora_adapter_dir


@pytest.fixture(scope="module")
def server(vllm_server):
    """The session's shared LoRA-enabled server; GRPO swaps its adapters in at run time."""
    return vllm_server


def _first_logprob(server, tiny_model_dir, sample, model):
    from vla.serving.client import VLAClient

    client = VLAClient.for_model_dir(server.url, model, tiny_model_dir)
    body = client.request_body(sample, n=1, temperature=0.0, seed=0)
    body.update(logprobs=True, max_tokens=4)
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120).json()
    return [t["logprob"] for t in reply["choices"][0]["logprobs"]["content"]]


@pytest.mark.server
def test_grpo_steps_update_the_served_adapter(server, load_lora_adapter, tiny_model_dir,
                                              adapter_dir, small_data_dir, tmp_path):
    from vla.data.build import load_dataset_dir
    from vla.model.loading import load_codec_of
    from vla.rl.rewards import score_completion
    from vla.traces import read_traces

    out = tmp_path / "grpo"
    config = dict(base=str(tiny_model_dir), adapter=str(adapter_dir), data=str(small_data_dir),
                  out=str(out), prompts_per_step=2, group_size=4, learning_rate=0.05,
                  temperature=0.9, top_p=0.95, beta_kl=0.05, server_url=server.url)
    result = run_grpo(GRPOConfig(steps=2, **config))
    log = result["log"]
    assert [r["step"] for r in log] == [1, 2]
    assert [r["adapter"] for r in log] == ["policy-1", "policy-2"]
    served = {m["id"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
    assert "policy-2" in served and not {"policy-0", "policy-1"} & served
    # the saved adapter is the trained one alone, not the reference beside it
    assert not (out / "adapter" / "reference").exists()

    # the adapter the server now uses is not the one the run started from
    dataset, _ = load_dataset_dir(small_data_dir)
    sample = dataset["train"][0]
    load_lora_adapter("start", adapter_dir)
    before = _first_logprob(server, tiny_model_dir, sample, "start")
    after = _first_logprob(server, tiny_model_dir, sample, "policy-2")
    assert max(abs(a - b) for a, b in zip(before, after, strict=True)) > 1e-3

    # the logged rewards are the rewards of the logged rollouts
    by_id = {s["sample_id"]: s for split in dataset.values() for s in split}
    codec = load_codec_of(tiny_model_dir)
    records = read_traces(out / "rollouts.jsonl")
    assert len(records) == 2 * 2 * 4
    for record in records:
        again = score_completion(record["raw_output"], by_id[record["sample_id"]], codec)
        assert again.total == pytest.approx(record["rewards"]["total"], abs=1e-4)
    for entry in log:
        totals = [r["rewards"]["total"] for r in records if r["step"] == entry["step"]]
        assert entry["reward"] == pytest.approx(np.mean(totals), abs=1e-3)
    assert (out / "rewards.png").stat().st_size > 1000
    # the finished run is recorded (what `vla demo` checks to reuse it), without the log
    finished = json.loads((out / "result.json").read_text())
    assert finished["steps"] == 2 and "log" not in finished

    # the same command with more steps resumes after step 2
    more = run_grpo(GRPOConfig(steps=3, **config))
    assert [r["step"] for r in more["log"]] == [1, 2, 3]
    assert len(read_traces(out / "rollouts.jsonl")) == 3 * 2 * 4


def test_advantages_and_clipping():
    import torch

    adv = group_advantages(np.array([1.0, 2.0, 3.0, 4.0]))
    assert adv.mean() == pytest.approx(0.0, abs=1e-9) and adv[3] > adv[0]
    assert np.all(group_advantages(np.ones(4)) == 0)
    old = torch.zeros(1, 3)
    mask = torch.ones(1, 3)
    a = torch.tensor([1.0])
    # a ratio far above 1 + eps_high gives no more than the clipped gain, and no gradient
    new = torch.full((1, 3), 1.0, requires_grad=True)
    loss = clipped_token_loss(new, old, None, a, mask, 0.2, 0.28, 0.0)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(-3 * 1.28)
    assert float(new.grad.abs().sum()) == 0.0
    # at ratio 1 the gradient is the plain policy gradient, -A per token
    new = torch.zeros((1, 3), requires_grad=True)
    clipped_token_loss(new, old, None, a, mask, 0.2, 0.28, 0.0).backward()
    assert torch.allclose(new.grad, -torch.ones(1, 3))
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        GRPOConfig(base="b", adapter="a", data="d", out="o", group_size=1)
    with pytest.raises(TypeError):
        GRPOConfig(base="b", adapter="a", data="d", out="o", reward_weights={"speed": 1.0})
    with pytest.raises(ValueError, match="top_p"):
        GRPOConfig(base="b", adapter="a", data="d", out="o", top_p=0.0)


@pytest.mark.server
def test_judge_through_an_openai_compatible_endpoint(server, tiny_model_dir, small_data_dir):
    """The judge is reached over HTTP (here the tiny model on the real vLLM server, its answer
    constrained to 0..10); the reward is that answer scaled to [0, 1] and enters the total."""
    from vla.data.build import load_dataset_dir
    from vla.model.loading import load_codec_of
    from vla.model.prompting import assistant_target
    from vla.rl.judge import JudgeConfig
    from vla.rl.rewards import RewardWeights, score_completion
    from vla.trajectory.types import ego_state_of

    dataset, _ = load_dataset_dir(small_data_dir)
    sample = dataset["train"][0]
    codec = load_codec_of(tiny_model_dir)
    ids = codec.encode(np.asarray(sample["future"]), ego_state_of(sample))
    text = assistant_target(sample["reasoning"], sample["decision_lon"], sample["decision_lat"],
                            ids)
    judge = JudgeConfig(server.url, "tiny")
    with_judge = score_completion(text, sample, codec, judge=judge)
    without = score_completion(text, sample, codec)
    score = with_judge.rewards["judge"].components["score"]
    assert 0 <= score <= 10 and with_judge.rewards["judge"].value == score / 10
    assert with_judge.total == pytest.approx(without.total + RewardWeights().judge * score / 10)
    with pytest.raises(httpx.ConnectError):
        score_completion(text, sample, codec, judge=JudgeConfig("http://127.0.0.1:9", "x"))


def _tiny_grammar():
    """A hand-made grammar over 12 token ids: delimiters 0-6, trajectory tokens 7-8,
    meta-actions [9] and [10, 11]; two trajectory tokens, at most 3 reasoning tokens."""
    from vla.model.constraints import GrammarIds, OutputGrammar

    ids = GrammarIds(0, 1, 2, 3, 4, 5, 6, traj_ids=np.array([7, 8]),
                     forbidden_in_reasoning=np.array([0, 2, 3, 4, 5, 6, 7, 8]),
                     meta_sequences=[[9], [10, 11]], vocab_size=12)
    return OutputGrammar(ids, num_tokens=2, max_reasoning_tokens=3)


def test_masked_logprobs_follow_the_sampler():
    import torch
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits, every = probs.log(), torch.ones(1, 4, dtype=torch.bool)

    def lp(allowed, temperature, top_p):  # of each of the 4 tokens, at the one position
        return torch.cat([masked_logprobs(logits, allowed, temperature, top_p, torch.tensor([i]))
                          for i in range(4)])

    # a token the grammar forbids has probability 0; the others are renormalised
    allowed = torch.tensor([[True, True, False, True]])
    got = lp(allowed, 1.0, 1.0)
    assert got[2] == -float("inf")
    assert torch.allclose(got[[0, 1, 3]], (probs[0, [0, 1, 3]] / 0.85).log())
    # temperature divides the logits before the softmax
    assert torch.allclose(lp(every, 2.0, 1.0), torch.log_softmax(logits[0] / 2.0, -1))
    assert not torch.allclose(lp(every, 2.0, 1.0), lp(every, 1.0, 1.0))
    # top-p 0.75 keeps {0.5, 0.3} (0.05 + 0.15 <= 0.25 is the dropped tail): the nucleus is
    # renormalised; a token of the tail asked for itself is kept beside the nucleus
    got = lp(every, 1.0, 0.75)
    assert torch.allclose(got[:2], (probs[0, :2] / 0.8).log())
    assert torch.allclose(got[3], (probs[0, 3] / 0.85).log())
    # as transformers' warpers (the same cut as vLLM's) on random logits, in the nucleus
    torch.manual_seed(0)
    logits = torch.randn(64, 50) * 3
    warped = TopPLogitsWarper(0.8)(None, TemperatureLogitsWarper(0.7)(None, logits.clone()))
    reference = torch.log_softmax(warped, -1)
    kept = torch.isfinite(reference)
    assert (~kept).any(dim=-1).all()  # every row has a tail
    columns = torch.arange(50).expand(64, 50)
    mine = torch.stack([masked_logprobs(logits, torch.ones_like(kept), 0.7, 0.8, columns[:, j])
                        for j in range(50)], -1)
    assert torch.allclose(mine[kept], reference[kept], atol=1e-5)


def test_forced_tokens_carry_no_loss():
    import torch

    grammar = _tiny_grammar()
    full = [0, 9, 10, 1, 2, 10, 11, 3, 4, 7, 8, 5, 6]
    # forced: <cot_start>, <meta_start>, 11 after 10, <meta_end>, <traj_start>, <traj_end>, eot
    free = [0, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0]
    table, index, mask = replay_grammar(grammar, [full, [0, 9]], len(full))
    assert mask[0].tolist() == free
    assert mask[1].tolist() == [0, 1] + [0] * (len(full) - 2)  # padding is out too
    comp = torch.tensor([full, [0, 9] + [0] * (len(full) - 2)])
    logits = torch.randn(2, len(full), 12, requires_grad=True)
    lp = masked_logprobs(logits, table[index], TEMPERATURE, TOP_P, comp)
    assert torch.isfinite(lp).all()
    forced = torch.tensor(free) == 0
    assert (lp[0, forced] == 0).all() and (lp[0, ~forced] < 0).all()
    lp[0, forced].sum().backward()
    assert float(logits.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="not allowed"):
        replay_grammar(grammar, [[0, 7]], 2)  # a trajectory token inside the reasoning


@pytest.fixture(scope="module")
def sampled(tiny_model_dir, adapter_dir, small_data_dir):
    """Two completions transformers ``generate`` samples from the SFT adapter under the grammar
    processor, the temperature and top-p, with the log-probabilities it reports for them."""
    import torch
    from transformers import LogitsProcessorList

    from vla.data.build import load_dataset_dir
    from vla.model.constraints import GrammarLogitsProcessor
    from vla.model.generate import prompt_inputs

    policy = PolicyModel(str(tiny_model_dir), str(adapter_dir), 0.05, TEMPERATURE, TOP_P)
    policy.model.eval()
    sample = load_dataset_dir(small_data_dir)[0]["train"][0]
    inputs = prompt_inputs(policy.processor, sample)
    prompt_len = inputs["input_ids"].shape[1]
    grammar = policy.grammar
    torch.manual_seed(0)
    with torch.no_grad():
        out = policy.model.generate(
            **inputs, max_new_tokens=grammar.max_new_tokens, do_sample=True,
            temperature=TEMPERATURE, top_p=TOP_P, top_k=None, num_return_sequences=2,
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
    return policy, sample, completions, reported


def test_update_logprobs_are_those_generate_sampled_with(sampled):
    """The log-probabilities of real constrained completions equal those transformers
    ``generate`` reports for the tokens it sampled (grammar, temperature, top-p)."""
    import torch

    policy, sample, completions, reported = sampled
    inputs, comp, mask, allowed = policy.group_inputs(sample, completions)
    with torch.no_grad():
        lp = policy.logprobs(inputs, comp, allowed)
    table, index = allowed
    for i, want in enumerate(reported):
        assert torch.isfinite(want).all()
        torch.testing.assert_close(lp[i, :len(want)], want, atol=1e-4, rtol=0)
        forced = (table.sum(-1) == 1)[index[i, :len(want)]]
        # <cot_start>, <cot_end> at the reasoning limit or not, <meta_start>, <traj_start>,
        # <traj_end>, end of turn at least: probability 1, out of the loss
        assert int(forced.sum()) >= 5
        assert (lp[i, :len(want)][forced] == 0).all() and (want[forced] == 0).all()
        assert torch.equal(mask[i, :len(want)], (~forced).float())


def test_kl_reference_is_the_starting_adapter(sampled, tiny_model_dir, adapter_dir, tmp_path):
    """The reference is the SFT adapter (not the base without one), and it does not move when
    the policy takes an optimizer step."""
    import torch

    alone, sample, completions, _ = sampled
    policy = PolicyModel(str(tiny_model_dir), str(adapter_dir), 0.05, TEMPERATURE, TOP_P,
                         reference=str(adapter_dir))
    inputs, comp, mask, allowed = policy.group_inputs(sample, completions)
    valid = mask > 0
    with torch.no_grad():
        sft = alone.logprobs(inputs, comp, allowed)
        with policy.model.disable_adapter():
            base = policy.logprobs(inputs, comp, allowed)
    ref = policy.reference_logprobs(inputs, comp, allowed)
    assert float((ref - base)[valid].abs().max()) > 1e-3
    torch.testing.assert_close(ref, sft, atol=1e-5, rtol=0)

    config = GRPOConfig(base=str(tiny_model_dir), adapter=str(adapter_dir), data="d", out="o",
                        learning_rate=0.05, beta_kl=0.1, temperature=TEMPERATURE, top_p=TOP_P)
    stats = _update(policy, [(sample, completions, group_advantages(np.array([1.0, 0.0])))],
                    config)
    assert stats["tokens"] == int(mask.sum()) < sum(len(c) for c in completions)
    with torch.no_grad():
        after = policy.logprobs(inputs, comp, allowed)
    assert float((after - sft)[valid].abs().max()) > 1e-3
    torch.testing.assert_close(policy.reference_logprobs(inputs, comp, allowed), sft, atol=1e-5,
                               rtol=0)
    trainable = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all(".default." in n for n in trainable)
    policy.save(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "adapter" / "reference").exists()


def test_lora_rank_follows_the_adapter(tmp_path, tiny_model_dir, adapter_dir):
    for r, rank_pattern, want in ((64, {}, 64), (12, {}, 16), (8, {"q_proj": 40}, 64)):
        folder = tmp_path / f"r{r}"
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"r": r,
                                                                "rank_pattern": rank_pattern}))
        assert lora_rank_of(folder) == want
    assert lora_rank_of(adapter_dir) == 8  # a real peft adapter of rank 8
    with pytest.raises(ValueError, match="adapter_config.json"):
        lora_rank_of(tmp_path)
    with pytest.raises(ValueError, match="max_lora_rank"):
        ServerConfig(model=tiny_model_dir, enable_lora=True, max_lora_rank=12)
    command = VLLMServer(ServerConfig(model=tiny_model_dir, enable_lora=True,
                                      max_lora_rank=lora_rank_of(tmp_path / "r64"))).command()
    assert command[command.index("--max-lora-rank") + 1] == "64"
