"""The main job, ``vla demo``: run every pipeline stage that exists, on the tiny preset.

Stages today (training, GRPO and evaluation join as they are built):

1. ``data``     build a small driving-scene data set with highway-env (skipped when a
                complete one is there);
2. ``model``    build the tiny Qwen2.5-VL with random weights, fit the trajectory codec
                on the data set's train split, train the tokenizer (skipped when done);
3. ``predict``  transformers generation under the output grammar on one test sample;
4. ``serve``    start vLLM's OpenAI-compatible server on 127.0.0.1, check it against
                transformers (same prompt tokens, same first-token log-probability),
                then batched rollouts (n samples per test sample, the same grammar)
                written as trace records — resumed, not redone, on a re-run — and stop.

Each stage's wall time is printed as it finishes and written, with what it measured, to
``<out>/summary.json``. The model has random weights: the point is that every stage
runs and that every output parses, not what the model says.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vla.data.build import BuildConfig, build_dataset, is_complete, load_dataset_dir
from vla.model.build import init_model, is_saved_model
from vla.model.presets import get_preset
from vla.predict import predict_record
from vla.serving.client import VLAClient
from vla.serving.rollout import run_rollouts
from vla.serving.vllm_server import ServerConfig, VLLMServer
from vla.stack_check import hf_forward, query_server, synthetic_camera_images
from vla.traces import read_traces

LOGPROB_TOLERANCE = 1e-3


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("runs/demo")
    scale: str = "tiny"
    episodes: int = 16
    rollout_samples: int = 12
    n: int = 4
    workers: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        get_preset(self.scale)  # raises on an unknown preset
        if self.episodes < 3:
            raise ValueError(f"episodes must be >= 3, got {self.episodes}")
        if self.n < 1 or self.rollout_samples < 1:
            raise ValueError("n and rollout_samples must be >= 1")


def run_demo(config: DemoConfig, console: Console | None = None) -> dict:
    console = console or Console()
    preset = get_preset(config.scale)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    data_dir, model_dir = out / "data", out / "model"
    traces = out / "traces"
    stage_seconds: dict[str, float] = {}
    summary: dict = {"scale": config.scale,
                     "stages_implemented": ["data", "model", "predict", "serve"]}

    def finish(stage: str, start: float, note: str) -> None:
        stage_seconds[stage] = round(time.perf_counter() - start, 2)
        console.print(f"[bold green]✓[/] {stage:<8} {stage_seconds[stage]:7.1f} s  {note}")

    start = time.perf_counter()
    if is_complete(data_dir):
        note = f"reused {data_dir}"
    else:
        build_dataset(BuildConfig(episodes=config.episodes, seed=0, workers=config.workers),
                      data_dir)
        note = f"built {data_dir}"
    dataset, data_meta = load_dataset_dir(data_dir)
    summary["data"] = {k: data_meta[k] for k in ("samples", "episodes_kept",
                                                 "dropped_episodes", "split_samples")}
    finish("data", start, f"{note}: {data_meta['samples']} samples from "
                          f"{data_meta['episodes_kept']} episodes")

    start = time.perf_counter()
    if is_saved_model(model_dir):
        note = f"reused {model_dir}"
    else:
        init_model(preset, model_dir, data_dir=data_dir)
        note = f"built {model_dir}"
    meta = json.loads((model_dir / "vla_model.json").read_text())
    summary["model"] = {"dir": str(model_dir), **meta}
    finish("model", start, f"{note} ({meta['parameters'] / 1e6:.1f} M parameters, "
                           f"{meta['trajectory_tokens']} trajectory tokens from "
                           f"{meta['codec']})")

    start = time.perf_counter()
    record = predict_record(model_dir, data_dir, 0, split="test",
                            trace_path=traces / "predict.jsonl")
    summary["predict"] = {"parsed": record["parsed"], "ade_m": record["ade_m"],
                          "tokens": record["tokens"], "seconds": record["seconds"]}
    finish("predict", start, f"parsed={record['parsed']}, {record['tokens']['completion']} "
                             f"tokens in {record['seconds']:.1f} s (transformers, constrained)")

    start = time.perf_counter()
    per_prompt = len(data_meta["cameras"]) * data_meta["frames"]
    server = VLLMServer(ServerConfig(model=model_dir, served_model_name="vla-demo",
                                     images_per_prompt=max(per_prompt, 2),
                                     max_model_len=4096),
                        log_path=out / "logs" / "vllm_server.log")
    images = synthetic_camera_images(2, preset.image_side, preset.image_side)
    forward = hf_forward(model_dir, images)
    with server:
        healthy_s = time.perf_counter() - start
        reply = query_server(server.url, "vla-demo", images)
        client = VLAClient.for_model_dir(server.url, "vla-demo", model_dir,
                                         images_per_prompt=per_prompt)
        rollout_file = traces / "rollouts.jsonl"
        stats = run_rollouts(client, dataset["test"], n=config.n, out=rollout_file,
                             limit=config.rollout_samples)
    choice = reply["choices"][0]
    first = choice["token_ids"][0]
    server_lp = choice["logprobs"]["content"][0]["logprob"]
    parity = (reply["prompt_token_ids"] == forward.prompt_ids
              and abs(server_lp - forward.logprobs[first]) < LOGPROB_TOLERANCE)
    records = read_traces(rollout_file)
    parse_rate = sum(r["parsed"] for r in records) / max(len(records), 1)
    summary["serve"] = {"healthy_seconds": round(healthy_s, 1), "parity": bool(parity),
                        "rollouts": stats, "rollout_records": len(records),
                        "parse_rate": round(parse_rate, 4)}
    summary["parse_rate"] = round(parse_rate, 4)
    finish("serve", start, f"healthy in {healthy_s:.0f} s; server and transformers "
                           f"{'agree' if parity else 'DISAGREE'}; {len(records)} rollouts "
                           f"({stats['skipped']} samples reused), parse rate {parse_rate:.3f}")

    summary["stage_seconds"] = stage_seconds
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_table(console, summary)
    if not parity:
        raise RuntimeError(f"vLLM and transformers disagree: {summary['serve']}")
    return summary


def _print_table(console: Console, summary: dict) -> None:
    table = Table(title="vla demo")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in summary["stage_seconds"].items():
        table.add_row(stage, f"{seconds:.1f}")
    console.print(table)
    console.print(f"parse rate of the vLLM rollouts: {summary['parse_rate']:.3f}")
