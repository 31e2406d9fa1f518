"""The main job, ``vla demo``: the whole pipeline on a CPU, each stage resumable.

1. ``data``        build a driving-scene data set with highway-env (60 episodes);
2. ``model``       build the tiny Qwen2.5-VL with random weights and fit the trajectory codec;
3. ``stage1``      full fine-tuning on the scenes (reasoning, meta-action, trajectory tokens);
4. ``stage2``      LoRA SFT on the stage-1 base, validated on the test split (``consistency_sft``);
5. ``serve``       start vLLM's OpenAI-compatible server on 127.0.0.1 with LoRA enabled and check
                   it against transformers (same prompt tokens, same first-token log-probability);
6. ``grpo``        GRPO from the SFT adapter, rollouts from that server, adapters swapped into it;
7. ``open_loop``   open-loop evaluation of the GRPO policy through the endpoint on the same test
                   samples, with baselines: its greedy output gives ``parse_rate``,
                   ``decision_accuracy``, ``consistency_grpo`` and ``ade_3s_model``; the mean
                   of 2 samples at T = 0.5 gives ``ade_3s_model_mean_k``; the greedy output
                   with the images blanked or shuffled, and the accuracy on the event samples,
                   show whether the policy looks at its cameras;
8. ``closed_loop`` the GRPO policy, the damped prior (what a model that ignores its inputs
                   drives), the expert through the same tracker, constant velocity and the
                   expert itself drive ``eval/scenarios/demo.yaml`` (every event, 2 episodes
                   each) in highway-env, in ``workers`` processes; rates with 95 % bootstrap
                   intervals over episodes;
9. ``report``      the HTML trace report of the closed-loop decisions.

Every stage writes its product atomically or records completion last; a re-run reuses what
is complete and redoes what is not (the server is only started when a stage needs it).
Stage timings are printed as they finish; ``<out>/summary.json`` holds the headline numbers.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from vla.data.build import (
    BuildConfig,
    build_dataset,
    is_complete,
    load_dataset_dir,
    served_rig,
)
from vla.jsonfile import read_json, write_json
from vla.model.build import init_model, is_saved_model
from vla.model.presets import get_preset
from vla.resources import resource_dir, resource_path

LOGPROB_TOLERANCE = 1e-3
CLOSED_LOOP_KEYS = ("episodes", "collision_rate", "collision_rate_ci95", "off_road_rate",
                    "off_road_rate_ci95", "pdms_like", "pdms_like_ci95", "progress",
                    "decision_accuracy_lon", "decision_accuracy_lat", "vs_damped_prior")
SCENARIOS = "eval/scenarios/demo.yaml"  # the closed-loop scenario set (packaged: vla.resources)


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("runs/demo")
    scale: str = "tiny"
    episodes: int = 60
    workers: int = 2
    grpo_steps: int = 24
    eval_samples: int = 102  # test samples for the validations (the whole test split here)
    open_loop_samples: int = 102
    open_loop_k: int = 2
    open_loop_temperature: float = 0.5
    closed_loop_episodes: int | None = None  # None: the whole scenario set
    stage1_steps: int | None = None  # None: the preset's stage config decides
    stage2_steps: int | None = None
    # torch threads for stages 1 and 2, which run alone; every later stage runs beside the
    # vLLM server and keeps the process's setting (OMP_NUM_THREADS, 1 in the Makefile)
    train_threads: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        get_preset(self.scale)  # raises on an unknown preset
        if self.episodes < 3:
            raise ValueError(f"episodes must be >= 3, got {self.episodes}")
        optional = ("stage1_steps", "stage2_steps", "closed_loop_episodes")
        for name in ("grpo_steps", "eval_samples", "open_loop_samples", "open_loop_k",
                     "workers", "train_threads", *optional):
            value = getattr(self, name)
            if not (value is None and name in optional) and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    def steps_override(self, stage: str) -> dict:
        steps = getattr(self, f"{stage}_steps")
        return {} if steps is None else {"max_steps": steps}


class _Stages:
    """Wall time of each stage in this run, and of the run that last built it."""

    def __init__(self, console: Console, built_before: dict):
        self.console, self.seconds, self.built = console, {}, dict(built_before)

    def finish(self, stage: str, start: float, note: str, built: bool = True) -> None:
        self.seconds[stage] = round(time.perf_counter() - start, 1)
        if built:
            self.built[stage] = self.seconds[stage]
        self.console.print(f"[bold green]✓[/] {stage:<11} {self.seconds[stage]:7.1f} s  {note}")


@contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads, then restore the previous number."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stage_file(name: str, scale: str) -> Path:
    """The packaged ``train/configs/<scale>_<name>.yaml``; a preset without its own settings
    trains with the tiny ones."""
    configs = resource_dir("train/configs")
    path = configs / f"{scale}_{name}.yaml"
    return path if path.is_file() else configs / f"tiny_{name}.yaml"


def _stage_config(name: str, scale: str, **paths):
    from vla.training.config import load_run_config

    overrides = [f"{k}={v}" for k, v in paths.items()]
    return load_run_config(_stage_file(name, scale), overrides)


def run_demo(config: DemoConfig, console: Console | None = None) -> dict:
    """Run every stage under ``config.out``, reusing what an earlier run completed; write,
    print and return the summary."""
    console = console or Console()
    preset = get_preset(config.scale)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    data_dir, model_dir = out / "data", out / "model"
    stage1_dir, stage2_dir, grpo_dir = out / "stage1", out / "stage2", out / "grpo"
    eval_dir, traces = out / "eval", out / "traces"
    previous = read_json(out / "summary.json") or {}
    stages = _Stages(console, previous.get("stage_seconds_when_built", {}))
    summary: dict = {"scale": config.scale}

    dataset, data_meta = _data_stage(config, data_dir, stages)
    summary["data"] = {k: data_meta[k] for k in ("samples", "episodes_kept", "split_samples")}
    _model_stage(preset, model_dir, data_dir, stages)
    base = _stage1(config, model_dir, data_dir, stage1_dir, stages, console)
    s2 = _stage2(config, base, data_dir, stage2_dir, stages, console)
    grpo_result, open_loop, closed_loop = _served_or_reused(config, stages, console, ServedInputs(
        dataset=dataset, data_meta=data_meta, data_dir=data_dir, base=base,
        sft_adapter=Path(s2["final"]), grpo_dir=grpo_dir, eval_dir=eval_dir, traces=traces))
    report = _report_stage(out, traces, data_dir, model_dir, stages)

    summary.update(_headline_numbers(s2["validation"]["model"], open_loop, closed_loop))
    summary.update({
        "stage_seconds": stages.seconds,
        "stage_seconds_when_built": stages.built,
        "report": str(report),
    })
    write_json(out / "summary.json", summary)
    from vla.demo_report import render_report

    (out / "report.md").write_text(render_report(summary))  # the results table as Markdown
    _print_summary(console, summary)
    return summary


def _data_stage(config: DemoConfig, data_dir: Path, stages: _Stages) -> tuple[Any, dict]:
    """``data``: build the data set unless a complete one is there; (DatasetDict, metadata)."""
    start = time.perf_counter()
    note = f"reused {data_dir}"
    built = not is_complete(data_dir)
    if built:
        build_dataset(BuildConfig(episodes=config.episodes, seed=0, workers=config.workers),
                      data_dir)
        note = f"built {data_dir}"
    dataset, data_meta = load_dataset_dir(data_dir)
    stages.finish("data", start, f"{note}: {data_meta['samples']} samples from "
                                 f"{data_meta['episodes_kept']} episodes", built)
    return dataset, data_meta


def _model_stage(preset, model_dir: Path, data_dir: Path, stages: _Stages) -> None:
    """``model``: the preset model with random weights and a codec fitted on the data,
    unless a saved one is there."""
    start = time.perf_counter()
    note = f"reused {model_dir}"
    built = not is_saved_model(model_dir)
    if built:
        init_model(preset, model_dir, data_dir=data_dir)
        note = f"built {model_dir}"
    meta = json.loads((model_dir / "vla_model.json").read_text())
    stages.finish("model", start, f"{note} ({meta['parameters'] / 1e6:.1f} M parameters, "
                                  f"codec {meta['codec']})", built)


def _stage1(config: DemoConfig, model_dir: Path, data_dir: Path, stage1_dir: Path,
            stages: _Stages, console: Console) -> Path:
    """``stage1``: full fine-tuning (resumed or reused by the training run); the final model."""
    from vla.training.run import finished_result, run_stage

    start = time.perf_counter()
    s1_config = _stage_config("stage1", config.scale, model=model_dir, data=data_dir,
                              out=stage1_dir, eval_samples=0,
                              **config.steps_override("stage1"))
    built = finished_result(s1_config) is None
    with torch_threads(config.train_threads):
        s1 = run_stage(s1_config, console)
    stages.finish("stage1", start, f"{s1['global_step']} steps, full fine-tuning", built)
    return Path(s1["final"])


def _stage2(config: DemoConfig, base: Path, data_dir: Path, stage2_dir: Path,
            stages: _Stages, console: Console) -> dict:
    """``stage2``: LoRA SFT on the stage-1 model, validated on the test split; its result."""
    from vla.training.run import finished_result, run_stage

    start = time.perf_counter()
    s2_config = _stage_config("stage2", config.scale, model=base, data=data_dir, out=stage2_dir,
                              eval_samples=config.eval_samples, eval_split="test",
                              **config.steps_override("stage2"))
    built = finished_result(s2_config) is None
    with torch_threads(config.train_threads):
        s2 = run_stage(s2_config, console)
    sft = s2["validation"]["model"]
    stages.finish("stage2", start, f"{s2['global_step']} LoRA steps; test: parse "
                                   f"{sft['parse_rate']:.3f}, consistency {sft['consistency']:.3f}",
                  built)
    return s2


def _served_or_reused(config: DemoConfig, stages: _Stages, console: Console,
                      inputs: ServedInputs) -> tuple[dict, dict, dict]:
    """The GRPO, open-loop and closed-loop results: an earlier run's when all three are
    complete (no server started), else :func:`_served_stages` redoes what is missing."""
    grpo_result = read_json(inputs.grpo_dir / "result.json")
    grpo_done = grpo_result is not None and grpo_result.get("steps") == config.grpo_steps
    open_loop = read_json(inputs.eval_dir / "open_loop.json")
    closed_loop = read_json(inputs.eval_dir / "closed_loop.json")
    if grpo_done and open_loop is not None and closed_loop is not None:
        for stage in ("serve", "grpo", "open_loop", "closed_loop"):
            stages.finish(stage, time.perf_counter(), "reused", built=False)
        return grpo_result, open_loop, closed_loop
    return _served_stages(config, stages, console, replace(
        inputs, grpo_result=grpo_result if grpo_done else None, open_loop=open_loop,
        closed_loop=closed_loop))


def _report_stage(out: Path, traces: Path, data_dir: Path, model_dir: Path,
                  stages: _Stages) -> Path:
    """``report``: the HTML trace report, rewritten when the closed-loop traces are newer."""
    start = time.perf_counter()
    report = out / "report.html"
    closed_traces = traces / "closed_loop.jsonl"
    built = not report.is_file() or report.stat().st_mtime < closed_traces.stat().st_mtime
    if built:
        _write_report(closed_traces, data_dir, model_dir, report)
    stages.finish("report", start, f"{'wrote' if built else 'reused'} {report}", built)
    return report


def _accuracy(row: dict) -> dict:
    return {"longitudinal": row["accuracy_lon"], "lateral": row["accuracy_lat"]}


def _image_and_subset_numbers(open_loop: dict) -> dict:
    """The decision numbers of the image diagnostics (the GRPO policy shown black images, or
    another sample's) on all test samples, and of the model, the blind rows and the image
    diagnostics on the event samples and on free driving (``decision_accuracy_events``,
    ``decision_accuracy_events_blind_prior``, ``decision_accuracy_free_images_blanked``, ...).
    Empty for an open-loop result without them (one written before they existed)."""
    out = {}
    for name, row in (open_loop.get("image_diagnostics") or {}).items():
        if "accuracy_lon" in row:
            out[f"decision_accuracy_{name}"] = _accuracy(row)
            out[f"consistency_{name}"] = row["consistency"]
            out[f"correct_and_consistent_{name}"] = row["correct_and_consistent"]
    for subset, part in (open_loop.get("subsets") or {}).items():
        rows = {"": part.get("model", {}),
                **{f"_{n.replace('-', '_')}": r for n, r in part.get("references", {}).items()},
                **{f"_{n}": r for n, r in part.get("image_diagnostics", {}).items()}}
        out.update({f"decision_accuracy_{subset}{suffix}": _accuracy(row)
                    for suffix, row in rows.items() if "accuracy_lon" in row})
    return out


def _headline_numbers(sft: dict, open_loop: dict, closed_loop: dict) -> dict:
    """The summary's numbers: the GRPO policy's greedy output through the endpoint, the blind
    references on the same test samples, the SFT validation, the baselines, the image
    diagnostics and the event / free-driving subsets (:func:`_image_and_subset_numbers`), the
    closed loop."""
    policy = open_loop["model"]  # the GRPO policy's greedy output through the endpoint
    refs = open_loop["references"]  # the blind rows on the same test samples
    kept = {k: open_loop[k] for k in ("image_diagnostics", "subsets") if k in open_loop}

    return {
        "parse_rate": policy["parsed"],
        "decision_accuracy": _accuracy(policy),
        **{f"decision_accuracy_{name.replace('-', '_')}": _accuracy(row)
           for name, row in refs.items()},
        "consistency_sft": sft["consistency"],
        "consistency_grpo": policy["consistency"],
        **{f"consistency_{name.replace('-', '_')}": row["consistency"]
           for name, row in refs.items()},
        "correct_and_consistent": policy["correct_and_consistent"],
        **{f"correct_and_consistent_{name.replace('-', '_')}": row["correct_and_consistent"]
           for name, row in refs.items()},
        "ade_3s_model": open_loop["model"]["l2_avg_3s"],
        "ade_3s_model_mean_k": open_loop["model_mean_k"]["l2_avg_3s"],
        "mean_k": f"mean of {open_loop['k']} samples at temperature "
                  f"{open_loop['temperature']}",
        "ade_3s_constant_velocity": open_loop["baselines"]["constant-velocity"]["l2_avg_3s"],
        "ade_3s_constant_acceleration":
            open_loop["baselines"]["constant-acceleration"]["l2_avg_3s"],
        "ade_3s_damped_acceleration":
            open_loop["baselines"]["damped-acceleration"]["l2_avg_3s"],
        "validation_samples": open_loop["samples"],
        **_image_and_subset_numbers(open_loop),
        "open_loop": {"samples": open_loop["samples"], "model": open_loop["model"],
                      "model_mean_k": open_loop["model_mean_k"], "references": refs,
                      "baselines": open_loop["baselines"], **kept},
        "closed_loop": {name: {k: m[k] for k in CLOSED_LOOP_KEYS if k in m}
                        for name, m in closed_loop["planners"].items()},
    }


@dataclass(frozen=True)
class ServedInputs:
    """What the served stages start from, and the results of them an earlier run left (None:
    the stage runs)."""

    dataset: Any  # the data set (DatasetDict)
    data_meta: dict  # its metadata (vla_data.json)
    data_dir: Path
    base: Path  # the stage-1 model the server serves
    sft_adapter: Path  # the stage-2 LoRA adapter GRPO starts from
    grpo_dir: Path
    eval_dir: Path
    traces: Path
    grpo_result: dict | None = None
    open_loop: dict | None = None
    closed_loop: dict | None = None


def _served_stages(config: DemoConfig, stages: _Stages, console: Console, inputs: ServedInputs):
    """serve → grpo → open loop → closed loop, on one vLLM server with LoRA enabled."""
    from vla.serving.parity import hf_forward, synthetic_camera_images
    from vla.serving.vllm_server import ServerConfig, VLLMServer, lora_rank_of

    start = time.perf_counter()
    rig_served = served_rig(inputs.data_meta)
    server = VLLMServer(ServerConfig(model=inputs.base, served_model_name="vla-base",
                                     enable_lora=True,
                                     max_lora_rank=lora_rank_of(inputs.sft_adapter),
                                     images_per_prompt=max(rig_served["images_per_prompt"], 2),
                                     video_fps=rig_served["video_fps"], max_model_len=4096),
                        log_path=config.out / "logs" / "vllm_server.log")
    rig = inputs.data_meta["config"]["samples"]  # parity on pictures of the cameras' size
    images = synthetic_camera_images(2, rig["image_height"], rig["image_width"])
    forward = hf_forward(inputs.base, images)
    with server:
        _check_parity(server.url, images, forward)
        stages.finish("serve", start, f"{server.url}: server and transformers agree")
        grpo_result = _grpo_stage(config, stages, console, inputs, server.url)
        policy = _served_policy(server.url, grpo_result, inputs.base, rig_served)
        open_loop = _open_loop_stage(config, stages, inputs, policy)
        closed_loop = _closed_loop_stage(config, stages, inputs, policy)
    return grpo_result, open_loop, closed_loop


def _check_parity(url: str, images, forward) -> None:
    """Refuse a server whose prompt tokens or first-token log-probability on the stage-1
    model differ from transformers' (``forward``, on the same ``images``)."""
    from vla.serving.parity import query_server

    reply = query_server(url, "vla-base", images)
    choice = reply["choices"][0]
    server_lp = choice["logprobs"]["content"][0]["logprob"]
    parity = (reply["prompt_token_ids"] == forward.prompt_ids and
              abs(server_lp - forward.logprobs[choice["token_ids"][0]]) < LOGPROB_TOLERANCE)
    if not parity:
        raise RuntimeError("vLLM and transformers disagree on the stage-1 model's first "
                           "token log-probability")


def _grpo_stage(config: DemoConfig, stages: _Stages, console: Console, inputs: ServedInputs,
                server_url: str) -> dict:
    """``grpo``: GRPO from the SFT adapter with rollouts from the server, unless an earlier
    run finished it; its result."""
    from vla.rl.grpo import GRPOConfig, run_grpo

    start = time.perf_counter()
    grpo_cfg = GRPOConfig(base=str(inputs.base), adapter=str(inputs.sft_adapter),
                          data=str(inputs.data_dir), out=str(inputs.grpo_dir),
                          steps=config.grpo_steps, server_url=server_url,
                          eval_samples=0,  # the open-loop stage scores the policy
                          **_grpo_settings(config.scale))
    grpo_result = inputs.grpo_result
    grpo_built = grpo_result is None
    if grpo_built:
        grpo_result = run_grpo(grpo_cfg, console)
    log = grpo_result.get("log") or []
    stages.finish("grpo", start, f"{config.grpo_steps} steps"
                  + (f", last step reward {log[-1]['reward']:.3f}" if log else ""),
                  grpo_built)
    return grpo_result


def _served_policy(server_url: str, grpo_result: dict, base: Path, rig_served: dict):
    """Load the GRPO adapter into the server as ``vla-policy``; the policy it serves."""
    from vla.policy_factory import make_policy
    from vla.rl.grpo import swap_adapter

    name = "vla-policy"
    swap_adapter(server_url, name, Path(grpo_result["adapter"]), None)
    return make_policy(model_dir=base, endpoint=server_url, served_model=name,
                       check_server=False, **rig_served)


def _open_loop_stage(config: DemoConfig, stages: _Stages, inputs: ServedInputs,
                     policy) -> dict:
    """``open_loop``: the served policy and the blind references on stratified test samples,
    with the image diagnostics and the event / free-driving subsets, unless an earlier run
    wrote them; the result."""
    from vla.evaluation.open_loop import evaluate_open_loop
    start = time.perf_counter()
    open_loop = inputs.open_loop
    open_loop_built = open_loop is None
    if open_loop_built:
        from vla.data.subsets import stratified_subset

        test = inputs.dataset["test"]
        samples = stratified_subset(test, config.open_loop_samples)
        from vla.reference import blind_policies

        open_loop = evaluate_open_loop(policy, samples, 10.0,
                                       references=blind_policies(inputs.dataset["train"]),
                                       k=config.open_loop_k, shortcut=False,
                                       image_diagnostics=True, concurrency=8,
                                       temperature=config.open_loop_temperature)
        write_json(inputs.eval_dir / "open_loop.json", open_loop)
    stages.finish("open_loop", start, f"{open_loop['samples']} test samples: ADE@3s "
                                      f"greedy {open_loop['model']['l2_avg_3s']:.3f} m, "
                                      f"mean of {open_loop['k']} "
                                      f"{open_loop['model_mean_k']['l2_avg_3s']:.3f} m",
                  open_loop_built)
    return open_loop


def _closed_loop_stage(config: DemoConfig, stages: _Stages, inputs: ServedInputs,
                       policy) -> dict:
    """``closed_loop``: the served policy and the reference planners drive the demo scenario
    set, unless an earlier run wrote the result; the result."""
    from vla.evaluation.closed_loop import (
        ClosedLoopConfig,
        evaluate_closed_loop,
        make_planner,
        model_planner,
    )
    from vla.evaluation.scenarios import load_scenario_set
    from vla.sim.observation import SampleConfig

    start = time.perf_counter()
    closed_loop = inputs.closed_loop
    closed_loop_built = closed_loop is None
    if closed_loop_built:
        trace_path = inputs.traces / "closed_loop.jsonl"
        trace_path.unlink(missing_ok=True)
        # the model drives with the cameras of its data set
        rig = SampleConfig(**inputs.data_meta["config"]["samples"])
        cl_config = ClosedLoopConfig(load_scenario_set(resource_path(SCENARIOS)), sample=rig,
                                     gif=True)
        planners = [model_planner(policy)] + [
            make_planner(name) for name in ("damped-prior", "expert-tracked",
                                            "constant-velocity")]
        closed_loop = evaluate_closed_loop(planners, cl_config, config.closed_loop_episodes,
                                           workers=config.workers,
                                           seed=0, trace_path=trace_path)
        write_json(inputs.eval_dir / "closed_loop.json", closed_loop)
    pdms = {n: m["pdms_like"] for n, m in closed_loop["planners"].items()}
    stages.finish("closed_loop", start, f"{closed_loop['episodes']} episodes; PDMS-like " +
                  ", ".join(f"{n} {v:.3f}" for n, v in pdms.items()), closed_loop_built)
    return closed_loop


def _grpo_settings(scale: str) -> dict:
    import yaml

    values = yaml.safe_load(_stage_file("grpo", scale).read_text())
    return {k: v for k, v in values.items()
            if k not in ("base", "adapter", "data", "out", "steps", "server_url",
                         "eval_samples")}


def _write_report(trace_file: Path, data_dir: Path, model_dir: Path, out: Path) -> None:
    from vla.cli import main

    main(["traces", "report", str(trace_file), "--data", str(data_dir), "--out", str(out)])


def _print_subsets(console: Console, summary: dict) -> None:
    """Decision accuracy on the event samples beside free driving (nothing for a summary
    without them)."""
    subsets = summary["open_loop"].get("subsets")
    if not subsets:
        return
    table = Table(title="decision accuracy lon / lat: event samples (a vehicle brakes, cuts "
                        "in, stands still or has right of way) and free driving")
    table.add_column("")
    for name in subsets:
        table.add_column(f"{name} ({subsets[name]['samples']} samples)", justify="right")
    suffixes = {"GRPO, greedy": "", "GRPO, images blanked": "_images_blanked",
                "GRPO, images shuffled": "_images_shuffled",
                **{name: f"_{name.replace('-', '_')}"
                   for name in summary["open_loop"].get("references", {})}}
    for label, suffix in suffixes.items():
        cells = [summary.get(f"decision_accuracy_{name}{suffix}") for name in subsets]
        if any(cells):
            table.add_row(label, *("–" if not c else
                                   f"{c['longitudinal']:.3f} / {c['lateral']:.3f}"
                                   for c in cells))
    console.print(table)


def _print_summary(console: Console, summary: dict) -> None:
    from vla.evaluation.cli import ci_cell

    table = Table(title="vla demo: stage times")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in summary["stage_seconds"].items():
        table.add_row(stage, f"{seconds:.1f}")
    table.add_row("total", f"{sum(summary['stage_seconds'].values()):.1f}")
    console.print(table)
    head = Table(title=f"test split ({summary['validation_samples']} samples, stratified by "
                       f"scenario; constrained decoding)")
    for c in ("", "parse rate", "decision acc. lon / lat", "consistency",
              "correct & consistent", "ADE@3s (m)"):
        head.add_column(c, justify="right")
    acc = summary["decision_accuracy"]
    head.add_row("SFT", "", "", f"{summary['consistency_sft']:.3f}", "", "")
    head.add_row("GRPO, greedy", f"{summary['parse_rate']:.3f}",
                 f"{acc['longitudinal']:.3f} / {acc['lateral']:.3f}",
                 f"{summary['consistency_grpo']:.3f}", f"{summary['correct_and_consistent']:.3f}",
                 f"{summary['ade_3s_model']:.3f}")
    head.add_row(f"GRPO, {summary['mean_k']}", "", "", "", "",
                 f"{summary['ade_3s_model_mean_k']:.3f}")
    rows = {**{f"GRPO, {name.replace('_', ' ')}": row for name, row in
               summary["open_loop"].get("image_diagnostics", {}).items()},
            **summary["open_loop"].get("references", {})}
    for name, row in rows.items():
        if "accuracy_lon" not in row:
            continue
        head.add_row(name, f"{row['parsed']:.3f}",
                     f"{row['accuracy_lon']:.3f} / {row['accuracy_lat']:.3f}",
                     f"{row['consistency']:.3f}", f"{row['correct_and_consistent']:.3f}",
                     f"{row['l2_avg_3s']:.3f}")
    head.add_row("constant velocity", "", "", "", "",
                 f"{summary['ade_3s_constant_velocity']:.3f}")
    head.add_row("constant acceleration", "", "", "", "",
                 f"{summary['ade_3s_constant_acceleration']:.3f}")
    head.add_row("damped acceleration (the codec's prior)", "", "", "", "",
                 f"{summary['ade_3s_damped_acceleration']:.3f}")
    console.print(head)
    _print_subsets(console, summary)
    episodes = next(iter(summary["closed_loop"].values()), {}).get("episodes")
    cl = Table(title=f"closed loop (eval/scenarios/demo.yaml, {episodes} episodes; 95 % "
                     f"bootstrap intervals over episodes)")
    for c in ("planner", "collision rate", "off-road rate", "PDMS-like", "progress",
              "decision acc. lon / lat (vs the expert's choice)"):
        cl.add_column(c, justify="right")
    for name, m in summary["closed_loop"].items():
        lon, lat = m.get("decision_accuracy_lon"), m.get("decision_accuracy_lat")
        cl.add_row(name, *(ci_cell(m, k) for k in ("collision_rate", "off_road_rate",
                                                    "pdms_like", "progress")),
                   "–" if lon is None else f"{lon:.3f} / {lat:.3f}")
    console.print(cl)
    console.print(f"report: {summary['report']}")
