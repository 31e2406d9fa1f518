"""GRPO on a LoRA adapter, with rollouts from vLLM's OpenAI-compatible server.

Why not TRL's ``GRPOTrainer``: its vLLM path pushes weights to ``trl vllm-serve`` over its own
NCCL channel; it cannot sample from a stock OpenAI-compatible endpoint nor swap LoRA adapters
through ``/v1/load_lora_adapter``, which is how this project serves. The loop is short:

each step: ``prompts_per_step`` prompts from the train split (drawn from a generator seeded by
the step, so a resumed run draws the same) → ``group_size`` completions each from the server,
under the output grammar, sampled from the current adapter → rewards (:mod:`vla.rl.rewards`)
→ group-normalised advantages ``(r - mean) / (std + 1e-4)`` → ``updates_per_step`` passes of
the clipped token-level objective over the same completions (transformers forward of prompt +
completion; ε low / high; the loss averaged over the completion tokens of the step, as DAPO;
optional KL, by the k3 estimator, to the reference: the starting SFT adapter, loaded frozen
beside the trained one) → the adapter is saved and loaded into the server under a new name,
the previous one unloaded, so the next rollouts come from the new policy.

The log-probabilities in the update are those of the distribution the server samples from
(:func:`masked_logprobs`): the grammar state machine of :mod:`vla.model.constraints` is
replayed over each completion, and at each position the logits are divided by the
temperature, the tokens the grammar forbids removed and the top-p nucleus kept as vLLM cuts
it; a token the grammar forces has probability 1 and is left out of the loss and of its token
count. Simplifications: the forward is transformers', not the server's, so the two differ by
rounding (a sampled token just outside the recomputed nucleus is kept in it); with
``updates_per_step = 1`` the ratio is 1 and the update is the plain group-normalised policy
gradient (TRL's ``num_iterations = 1``); groups whose rewards are all equal carry no signal
and are skipped.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.jsonfile import write_json
from vla.policy_factory import make_policy
from vla.rl.rewards import RewardWeights, score_completion
from vla.traces import append_trace, grpo_record, read_traces, trim_log

TRAINED, REFERENCE = "default", "reference"  # the peft adapter names


@dataclass
class GRPOConfig:
    base: str                     # the stage-1 model the adapter sits on
    adapter: str                  # the SFT adapter to start from
    data: str
    out: str
    steps: int = 10
    prompts_per_step: int = 4
    group_size: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    learning_rate: float = 5e-4
    eps_low: float = 0.2
    eps_high: float = 0.28
    beta_kl: float = 0.0
    updates_per_step: int = 1
    max_grad_norm: float = 1.0
    seed: int = 0
    server_url: str | None = None  # None: start a server for the run; else as `vla serve`
    #                                 prints it (http://HOST:PORT/v1, /v1 optional)
    eval_samples: int = 0          # greedy validation of the final adapter on the test split
    judge_url: str | None = None   # optional reasoning judge (any OpenAI-compatible endpoint)
    judge_model: str | None = None
    reward_weights: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "updates_per_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (advantages are relative), "
                             f"got {self.group_size}")
        if not (0 <= self.eps_low < 1 and self.eps_high >= 0):
            raise ValueError("eps_low must be in [0, 1) and eps_high >= 0")
        if self.learning_rate <= 0 or self.temperature <= 0 or self.beta_kl < 0:
            raise ValueError("learning_rate and temperature must be > 0, beta_kl >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        RewardWeights(**self.reward_weights)  # validates the names and values
        if self.server_url is not None:
            from vla.serving.urls import api_base

            try:
                api_base(self.server_url)
            except ValueError as exc:
                raise ValueError(f"server_url: {exc}") from None

    @property
    def out_dir(self) -> Path:
        return Path(self.out)


def group_advantages(rewards: np.ndarray) -> np.ndarray:
    """``(G,)`` rewards of one group → advantages normalised within the group."""
    rewards = np.asarray(rewards, float)
    return (rewards - rewards.mean()) / (rewards.std() + 1e-4)


def clipped_token_loss(new_logp, old_logp, ref_logp, advantages, mask, eps_low, eps_high,
                       beta_kl):
    """Sum over completion tokens of the clipped surrogate (+ KL); caller divides by tokens."""
    import torch

    ratio = torch.exp(new_logp - old_logp)
    adv = advantages[:, None]
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv)
    loss = -surrogate
    if beta_kl > 0:
        delta = ref_logp - new_logp
        loss = loss + beta_kl * (torch.exp(delta) - delta - 1)
    return (loss * mask).sum()


def masked_logprobs(logits, allowed, temperature: float, top_p: float, tokens):
    """Log-probability of ``tokens`` ``(...)`` under the distribution a sampler draws them from:
    ``logits / temperature`` ``(..., vocab)``, the tokens outside ``allowed`` (bool, same shape)
    removed, then the top-p nucleus as vLLM (and transformers) cut it: sorted by probability,
    the tokens whose cumulative probability from the least likely up is ``<= 1 - top_p``
    dropped, the likeliest always kept. The token itself is never dropped by the nucleus: a
    sampled token was in the sampler's, and rounding may put it just outside this one."""
    import torch

    scores = (logits.float() / temperature).masked_fill(~allowed, -float("inf"))
    if top_p < 1:
        with torch.no_grad():
            ascending, order = scores.sort(-1)
            drop = ascending.softmax(-1).cumsum(-1) <= 1 - top_p
            drop[..., -1] = False
            drop = torch.zeros_like(drop).scatter(-1, order, drop)
            drop.scatter_(-1, tokens[..., None], False)
        scores = scores.masked_fill(drop, -float("inf"))
    return torch.log_softmax(scores, -1).gather(-1, tokens[..., None])[..., 0]


def replay_grammar(grammar, completions: list[list[int]], width: int):
    """The output grammar replayed over each completion (right-padded to ``width``).

    Returns the distinct masks of allowed tokens ``(k, vocab)`` (row 0, for padding, allows
    every token), which of them holds at each position ``(n, width)``, and the loss mask
    ``(n, width)``: the completion positions where the grammar leaves a choice. A forced token
    (the only one allowed) has probability 1 whatever the weights, so it carries no gradient.
    """
    import torch

    table, rows = [np.ones(grammar.ids.vocab_size, bool)], {}
    index = np.zeros((len(completions), width), np.int64)
    for i, ids in enumerate(completions):
        state = grammar.initial()
        for j, token in enumerate(ids):
            allowed = grammar.allowed(state)  # cached by the grammar: one object per mask
            if id(allowed) not in rows:
                rows[id(allowed)] = len(table)
                table.append(allowed)
            index[i, j] = rows[id(allowed)]
            state = grammar.advance(state, token)
    table, index = torch.from_numpy(np.stack(table)), torch.from_numpy(index)
    loss_mask = (table.sum(-1) > 1)[index] & (index > 0)
    return table, index, loss_mask.float()


class PolicyModel:
    """The base model with the trainable LoRA adapter (peft's ``default``) and, for the KL
    term, the ``reference`` adapter loaded frozen beside it; the log-probability of completions
    under the grammar, temperature and top-p the server samples with."""

    def __init__(self, base: str, adapter: str, learning_rate: float, temperature: float = 1.0,
                 top_p: float = 1.0, reference: str | None = None):
        import torch
        from peft import PeftModel
        from transformers import AutoProcessor

        from vla.model.arch import load_pretrained
        from vla.model.loading import grammar_for_dir

        model = load_pretrained(base, dtype=torch.float32)
        self.model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        self.has_reference = reference is not None
        if self.has_reference:
            self.model.load_adapter(reference, adapter_name=REFERENCE, is_trainable=False)
        self.processor = AutoProcessor.from_pretrained(base)
        self.grammar = grammar_for_dir(base)  # the client's: the same the server samples under
        self.temperature, self.top_p = temperature, top_p
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad], lr=learning_rate)

    def group_inputs(self, sample: dict, completions: list[list[int]]):
        """One batch: the prompt (with its images) followed by each completion, right-padded;
        the completion tokens, the loss mask and the allowed tokens (:func:`replay_grammar`)."""
        import torch

        from vla.model.generate import prompt_inputs

        prompt = prompt_inputs(self.processor, sample)
        n, width = len(completions), max(len(c) for c in completions)
        pad = self.processor.tokenizer.pad_token_id
        comp = torch.full((n, width), pad, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for i, ids in enumerate(completions):
            comp[i, :len(ids)] = torch.tensor(ids)
            attention[i, :len(ids)] = 1
        table, index, mask = replay_grammar(self.grammar, completions, width)
        ids = torch.cat([prompt["input_ids"].repeat(n, 1), comp], dim=1)
        attention = torch.cat([prompt["attention_mask"].repeat(n, 1), attention], dim=1)
        inputs = {"input_ids": ids, "attention_mask": attention}
        # the cameras, once per completion: still images and/or 2-frame videos (one per camera)
        for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
                    "second_per_grid_ts"):
            if key in prompt:
                value = torch.as_tensor(prompt[key])
                inputs[key] = value.repeat(n, *([1] * (value.dim() - 1)))
        if "mm_token_type_ids" in prompt:  # where the images are: the 3-D (M-RoPE) positions
            inputs["mm_token_type_ids"] = torch.cat(  # the completion is text (type 0)
                [prompt["mm_token_type_ids"].repeat(n, 1), torch.zeros_like(comp)], dim=1)
        return inputs, comp, mask, (table, index)

    def logprobs(self, inputs, comp, allowed):
        """Log-probability of each completion token under the sampler's distribution,
        ``(n, width)``; ``allowed`` is the ``(table, index)`` of :meth:`group_inputs`."""
        table, index = allowed
        width = comp.shape[1]
        logits = self.model(**inputs, logits_to_keep=width + 1).logits[:, :-1]
        return masked_logprobs(logits, table[index], self.temperature, self.top_p, comp)

    def reference_logprobs(self, inputs, comp, allowed):
        """:meth:`logprobs` under the frozen reference adapter (no gradient)."""
        import torch

        if not self.has_reference:
            raise ValueError("the policy was built without a reference adapter")
        self.model.set_adapter(REFERENCE, inference_mode=True)
        try:
            with torch.no_grad():
                return self.logprobs(inputs, comp, allowed)
        finally:
            self.model.set_adapter(TRAINED)  # trainable again, the reference frozen

    def save(self, out: Path) -> None:
        """The trained adapter alone (peft would write the reference beside it)."""
        self.model.save_pretrained(out, selected_adapters=[TRAINED])


def _server_call(url: str, path: str, body: dict) -> None:
    """POST ``body`` to ``<api base of url><path>``; a server not reached is one line
    (:class:`vla.serving.urls.ServerUnreachable`)."""
    import httpx

    from vla.serving.urls import ServerUnreachable, api_base

    target = f"{api_base(url)}{path}"
    try:
        response = httpx.post(target, json=body, timeout=120.0)
    except httpx.TransportError as exc:
        raise ServerUnreachable(target, " ".join(str(exc).split()) or type(exc).__name__
                                ) from None
    if response.status_code != 200:
        raise RuntimeError(f"{target} answered {response.status_code}: {response.text[:300]}")


def swap_adapter(url: str, new_name: str, new_path: Path, old_name: str | None) -> None:
    """Load ``new_path`` into the server at ``url`` (any form :func:`vla.serving.urls.api_base`
    takes) as ``new_name`` (replacing an adapter of that name, e.g. one a killed run left
    there); unload ``old_name``."""
    _server_call(url, "/load_lora_adapter", {"lora_name": new_name, "load_inplace": True,
                                             "lora_path": str(Path(new_path).resolve())})
    if old_name is not None:
        _server_call(url, "/unload_lora_adapter", {"lora_name": old_name})


def _last_step(out: Path) -> int:
    state = out / "state.json"
    return json.loads(state.read_text())["step"] if state.is_file() else 0  # written atomically


@dataclass
class _Run:
    """What every step of a GRPO run uses: the prompts, the policy, how rollouts are scored
    and where steps and rollouts are logged."""

    config: GRPOConfig
    out: Path
    train: Any  # the data set's train split
    policy: PolicyModel
    codec: Any  # the base model's trajectory codec
    weights: RewardWeights
    judge: Any  # a vla.rl.judge.JudgeConfig, or None
    log_path: Path
    trace_path: Path


def run_grpo(config: GRPOConfig, console=None) -> dict:
    """Run (or resume) GRPO; returns the per-step log. Needs a running or startable vLLM."""
    from rich.console import Console
    from tqdm import tqdm

    from vla.data.build import load_dataset_dir, served_rig
    from vla.model.loading import load_codec_of

    console = console or Console()
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    weights = RewardWeights(**config.reward_weights)
    judge = _judge_of(config)
    dataset, meta = load_dataset_dir(config.data)
    train = dataset["train"]
    codec = load_codec_of(config.base)
    rig_served = served_rig(meta)
    start, adapter_dir, policy = _resume(config, out, console)
    log_path, trace_path = out / "grpo_log.jsonl", out / "rollouts.jsonl"
    for path in (log_path, trace_path):  # drop what a killed run wrote after its last save
        trim_log(path, start)
    run = _Run(config, out, train, policy, codec, weights, judge, log_path,
               trace_path)

    server, url = _rollout_server(config, out, rig_served)
    try:
        name = f"policy-{start}"
        swap_adapter(url, name, adapter_dir, None)
        # the requests carry no seed (see EndpointPolicy): each step's rollouts are sampled
        # by the server from the current adapter, at the run's temperature and top-p
        sampler = make_policy(model_dir=config.base, endpoint=url, served_model=name,
                              top_p=config.top_p, check_server=False, **rig_served)
        for step in tqdm(range(start + 1, config.steps + 1), desc="grpo", initial=start,
                         total=config.steps):
            name = _step(run, step, sampler, url, name)
    finally:
        if server is not None:
            server.stop()
    return _finish(config, out, dataset, log_path)


def _judge_of(config: GRPOConfig):
    """The reasoning judge of the run (a ``JudgeConfig``), or None without ``judge_url``."""
    if not config.judge_url:
        return None
    from vla.rl.judge import JudgeConfig

    return JudgeConfig(config.judge_url, config.judge_model or "judge")


def _resume(config: GRPOConfig, out: Path, console) -> tuple[int, Path, PolicyModel]:
    """The last step saved under ``out`` (0 for a fresh run), the adapter to start from, and
    the policy on it (with the optimizer's saved state when resuming)."""
    import torch

    start = _last_step(out)
    adapter_dir = out / "adapters" / f"step-{start}" if start else Path(config.adapter)
    policy = PolicyModel(config.base, str(adapter_dir), config.learning_rate, config.temperature,
                         config.top_p, reference=config.adapter if config.beta_kl > 0 else None)
    if start and (out / "optimizer.pt").is_file():
        policy.optimizer.load_state_dict(torch.load(out / "optimizer.pt"))
        console.print(f"resuming GRPO after step {start}")
    return start, adapter_dir, policy


def _rollout_server(config: GRPOConfig, out: Path, rig_served: dict):
    """(the server started for the run, or None; the rollout URL): ``server_url`` when given,
    else a LoRA-enabled vLLM server on the base model."""
    from vla.serving.vllm_server import ServerConfig, VLLMServer, lora_rank_of

    if config.server_url is not None:
        return None, config.server_url
    server = VLLMServer(ServerConfig(model=Path(config.base), enable_lora=True,
                                     max_lora_rank=lora_rank_of(config.adapter),
                                     images_per_prompt=max(rig_served["images_per_prompt"], 2),
                                     video_fps=rig_served["video_fps"], max_model_len=4096),
                        log_path=out / "vllm_server.log").start()
    return server, server.url


def _step(run: _Run, step: int, sampler, url: str, name: str) -> str:
    """One GRPO step: sample groups for the step's prompts from the served adapter ``name``,
    score them, update the policy, serve the new adapter in its place, log the step; returns
    the new adapter's served name."""
    import torch

    config, out = run.config, run.out
    t0 = time.perf_counter()
    rng = np.random.default_rng([config.seed, step])
    picks = rng.choice(len(run.train), size=config.prompts_per_step, replace=False)
    samples = [run.train[int(i)] for i in picks]
    sampler.client.model = name
    outputs = sampler.decide(samples, config.group_size, config.temperature)
    t_roll = time.perf_counter() - t0
    groups, all_rewards = _score_groups(run, samples, outputs, name, step)
    stats = _update(run.policy, groups, config)
    new_dir = out / "adapters" / f"step-{step}"
    run.policy.save(new_dir)
    new_name = f"policy-{step}"
    swap_adapter(url, new_name, new_dir, name)
    torch.save(run.policy.optimizer.state_dict(), out / "optimizer.pt")
    record = {"step": step, "adapter": new_name, "seconds": round(
        time.perf_counter() - t0, 2), "rollout_seconds": round(t_roll, 2), **stats,
        **_reward_means(all_rewards)}
    append_trace(run.log_path, record)
    write_json(out / "state.json", {"step": step, "adapter": str(new_dir)})
    _prune(out / "adapters", keep=step)
    return new_name


def _score_groups(run: _Run, samples: list, outputs: list, name: str, step: int):
    """Score each prompt's group of completions and trace them; the groups whose rewards
    differ, as (sample, completion token ids, advantages), and every group's scores."""
    size = run.config.group_size
    groups, all_rewards = [], []
    for i, sample in enumerate(samples):
        group = outputs[i * size:(i + 1) * size]
        if any(not o.token_ids for o in group):  # the update needs the sampled tokens
            raise RuntimeError(f"the server sent a completion of {sample['sample_id']} without "
                               f"its token ids (the request asks for return_token_ids)")
        scored = [score_completion(o.text, sample, run.codec, run.weights, run.judge)
                  for o in group]
        totals = np.array([s.total for s in scored])
        all_rewards.append(scored)
        for output, s in zip(group, scored, strict=True):
            append_trace(run.trace_path, grpo_record(output, sample, name, step, s.to_json()))
        if np.ptp(totals) > 0:
            groups.append((sample, [o.token_ids for o in group], group_advantages(totals)))
    return groups, all_rewards


def _finish(config: GRPOConfig, out: Path, dataset, log_path: Path) -> dict:
    """Copy the last step's adapter to ``out/adapter``, plot the rewards, validate the adapter
    on the test split when asked; write and return the result."""
    final = out / "adapter"
    shutil.rmtree(final, ignore_errors=True)
    shutil.copytree(out / "adapters" / f"step-{config.steps}", final)
    log = read_traces(log_path)
    plot_rewards(log, out / "rewards.png")
    result = {"steps": config.steps, "adapter": str(final), "log": log}
    if config.eval_samples:
        from vla.data.subsets import stratified_subset
        from vla.training.validate import validate

        split = dataset["test"]
        samples = stratified_subset(split, config.eval_samples)
        metrics = validate(make_policy(model_dir=config.base, adapter=final), samples,
                           trace_path=None)
        result["validation"] = {"split": "test", "samples": len(samples),
                                "model": metrics["model"], "baselines": metrics["baselines"]}
    write_json(out / "result.json", {k: v for k, v in result.items() if k != "log"})
    return result


def _update(policy: PolicyModel, groups, config: GRPOConfig) -> dict:
    import torch

    if not groups:
        return {"loss": 0.0, "groups_used": 0, "tokens": 0}
    policy.model.train()
    prepared = []
    for sample, completions, adv in groups:
        inputs, comp, mask, allowed = policy.group_inputs(sample, completions)
        old = ref = None
        with torch.no_grad():
            if config.updates_per_step > 1:  # with one pass, old = new (detached): no forward
                old = policy.logprobs(inputs, comp, allowed)
            if config.beta_kl > 0:
                ref = policy.reference_logprobs(inputs, comp, allowed)
        prepared.append((inputs, comp, mask, allowed, old, ref,
                         torch.tensor(adv, dtype=torch.float32)))
    tokens = sum(float(p[2].sum()) for p in prepared)  # those the grammar leaves a choice
    total = 0.0
    for _ in range(config.updates_per_step):
        policy.optimizer.zero_grad()
        for inputs, comp, mask, allowed, old, ref, adv in prepared:
            new = policy.logprobs(inputs, comp, allowed)
            old = new.detach() if old is None else old
            loss = clipped_token_loss(new, old, ref, adv, mask, config.eps_low,
                                      config.eps_high, config.beta_kl) / max(tokens, 1.0)
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(
            [p for p in policy.model.parameters() if p.requires_grad], config.max_grad_norm)
        policy.optimizer.step()
    return {"loss": round(total / config.updates_per_step, 5), "groups_used": len(groups),
            "tokens": int(tokens)}


def _reward_means(all_rewards) -> dict:
    flat = [s for group in all_rewards for s in group]
    out = {"reward": round(float(np.mean([s.total for s in flat])), 4)}
    for name in flat[0].rewards:
        out[f"reward_{name}"] = round(float(np.mean([s.rewards[name].value for s in flat])), 4)
    return out


def _prune(folder: Path, keep: int) -> None:
    for path in folder.glob("step-*"):
        if int(path.name.split("-")[1]) < keep:
            shutil.rmtree(path, ignore_errors=True)


def plot_rewards(log: list[dict], out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    steps = [r["step"] for r in log]
    for key in sorted(k for k in (log[0] if log else {}) if k.startswith("reward")):
        ax.plot(steps, [r[key] for r in log], label=key.replace("reward_", ""), marker=".")
    ax.set_xlabel("GRPO step")
    ax.set_title("mean reward components of the rollouts")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
