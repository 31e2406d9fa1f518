"""The main job, ``vla demo``: run every pipeline stage that exists, on the tiny preset.

Stages today (the data, training, GRPO and evaluation stages join as they are built):

1. ``model``   build the tiny Qwen2.5-VL with random weights and a locally trained
               tokenizer, save it (skipped when a complete checkpoint is already there);
2. ``forward`` one transformers forward pass on two synthetic camera images;
3. ``serve``   start vLLM's OpenAI-compatible server on 127.0.0.1 for that checkpoint,
               send the same images as data URIs, check that the server saw the same
               prompt tokens and gives the same first-token log-probability, stop it.

Each stage's wall time is printed as it finishes and written, with the checks, to
``<out>/summary.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vla.model.build import init_model, is_saved_model
from vla.model.presets import get_preset
from vla.serving.vllm_server import ServerConfig, VLLMServer
from vla.stack_check import hf_forward, query_server, synthetic_camera_images

LOGPROB_TOLERANCE = 1e-3


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("runs/demo")
    scale: str = "tiny"
    images: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        get_preset(self.scale)  # raises on an unknown preset
        if self.images < 1:
            raise ValueError(f"images must be >= 1, got {self.images}")


def run_demo(config: DemoConfig, console: Console | None = None) -> dict:
    console = console or Console()
    preset = get_preset(config.scale)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    stage_seconds: dict[str, float] = {}
    summary: dict = {"scale": config.scale, "stages_implemented": ["model", "forward", "serve"]}

    def finish(stage: str, start: float, note: str) -> None:
        stage_seconds[stage] = round(time.perf_counter() - start, 2)
        console.print(f"[bold green]✓[/] {stage:<8} {stage_seconds[stage]:7.1f} s  {note}")

    start = time.perf_counter()
    if is_saved_model(model_dir):
        note = f"reused {model_dir}"
    else:
        init_model(preset, model_dir)
        note = f"built {model_dir}"
    meta = json.loads((model_dir / "vla_model.json").read_text())
    summary["model"] = {"dir": str(model_dir), **meta}
    finish("model", start, f"{note} ({meta['parameters'] / 1e6:.1f} M parameters)")

    images = synthetic_camera_images(config.images, preset.image_side, preset.image_side)
    start = time.perf_counter()
    forward = hf_forward(model_dir, images)
    summary["forward"] = {"prompt_tokens": len(forward.prompt_ids),
                          "image_tokens": forward.image_tokens,
                          "forward_ms": round(forward.seconds * 1000, 1)}
    finish("forward", start, f"{len(forward.prompt_ids)} prompt tokens "
                             f"({forward.image_tokens} from {config.images} images), "
                             f"{forward.seconds * 1000:.0f} ms per forward pass")

    start = time.perf_counter()
    server = VLLMServer(ServerConfig(model=model_dir, served_model_name="vla-demo",
                                     images_per_prompt=config.images),
                        log_path=out / "logs" / "vllm_server.log")
    with server:
        healthy_s = time.perf_counter() - start
        reply = query_server(server.url, "vla-demo", images)
    choice = reply["choices"][0]
    first = choice["token_ids"][0]
    server_lp = choice["logprobs"]["content"][0]["logprob"]
    summary["serve"] = {
        "healthy_seconds": round(healthy_s, 1),
        "same_prompt_tokens": reply["prompt_token_ids"] == forward.prompt_ids,
        "first_token_logprob_server": server_lp,
        "first_token_logprob_transformers": float(forward.logprobs[first]),
        "completion_tokens": reply["usage"]["completion_tokens"],
    }
    ok = (summary["serve"]["same_prompt_tokens"]
          and abs(server_lp - forward.logprobs[first]) < LOGPROB_TOLERANCE)
    summary["serve"]["parity"] = bool(ok)
    finish("serve", start, f"healthy in {healthy_s:.0f} s; server and transformers "
                           f"{'agree' if ok else 'DISAGREE'}; stopped")

    summary["stage_seconds"] = stage_seconds
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_table(console, summary)
    if not ok:
        raise RuntimeError(f"vLLM and transformers disagree: {summary['serve']}")
    return summary


def _print_table(console: Console, summary: dict) -> None:
    table = Table(title="vla demo (foundation stages)")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in summary["stage_seconds"].items():
        table.add_row(stage, f"{seconds:.1f}")
    console.print(table)
