"""GRPO against a real vLLM server: the served adapter changes between steps, the rewards are
those of the rollouts, and a re-run resumes."""

import json

import httpx
import numpy as np
import pytest

from vla.rl.grpo import GRPOConfig, clipped_token_loss, group_advantages, run_grpo
from vla.serving.vllm_server import ServerConfig, VLLMServer


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    from vla.model.lora import random_adapter

    return random_adapter(tiny_model_dir, tmp_path_factory.mktemp("sft") / "a", scale=1.0)


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    srv = VLLMServer(ServerConfig(model=tiny_model_dir, served_model_name="tiny",
                                  images_per_prompt=6, max_model_len=4096, enable_lora=True),
                     log_path=tmp_path_factory.mktemp("vllm") / "vllm.log")
    with srv:
        yield srv
    assert srv.alive_pids() == []


def _first_logprob(server, tiny_model_dir, sample, model):
    from vla.serving.client import VLAClient

    client = VLAClient.for_model_dir(server.url, model, tiny_model_dir)
    body = client.request_body(sample, n=1, temperature=0.0, seed=0)
    body.update(logprobs=True, max_tokens=4)
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120).json()
    return [t["logprob"] for t in reply["choices"][0]["logprobs"]["content"]]


def test_grpo_steps_update_the_served_adapter(server, tiny_model_dir, adapter_dir,
                                              small_data_dir, tmp_path):
    from vla.data.build import load_dataset_dir
    from vla.model.loading import load_codec_of
    from vla.rl.rewards import score_completion
    from vla.traces import read_traces

    out = tmp_path / "grpo"
    config = dict(base=str(tiny_model_dir), adapter=str(adapter_dir), data=str(small_data_dir),
                  out=str(out), prompts_per_step=2, group_size=4, learning_rate=0.05,
                  server_url=server.url)
    result = run_grpo(GRPOConfig(steps=2, **config))
    log = result["log"]
    assert [r["step"] for r in log] == [1, 2]
    assert [r["adapter"] for r in log] == ["policy-1", "policy-2"]
    served = {m["id"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
    assert "policy-2" in served and not {"policy-0", "policy-1"} & served

    # the adapter the server now uses is not the one the run started from
    dataset, _ = load_dataset_dir(small_data_dir)
    sample = dataset["train"][0]
    httpx.post(f"{server.url}/v1/load_lora_adapter",
               json={"lora_name": "start", "lora_path": str(adapter_dir)}, timeout=120)
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
