"""Benchmark of the GPU recipe on one GPU, with a random-weight exact-shape model.

    python eval/bench_gpu.py [--shape cosmos-reason1-7b] [--data DIR] [--json-out OUT]
    python eval/bench_gpu.py --device cpu --layers 1 --batch 1 --steps 2   # a check on a CPU

The model is an exact shape (vla/model/shapes.py) at full depth in bf16 (``--layers`` cuts
it), built on the device with random weights: nothing is downloaded. It measures

* stage 2 of train/configs/cosmos_reason1_7b_stage2.yaml: LoRA (the recipe's rank, alpha and
  dropout) on the language model's attention, gradient checkpointing, AdamW, the recipe's
  batch; stage 1 of ..._stage1.yaml: only the injected embedding and output-head rows train
  (full-size gradients masked to them, as the trainer does). For each: samples/s, tokens/s
  (non-padding tokens), peak memory, and the largest batch that fits on an 80 GB and a
  141 GB card (doubling from the recipe's batch, then bisecting to within 1/8, catching
  out-of-memory; the 80 GB case on a larger card through
  ``torch.cuda.set_per_process_memory_fraction``);
* the latency of one decision under the output grammar (transformers ``generate``, greedy,
  batch 1): the prefill (vision tower and prompt), and per token the reasoning and the
  trajectory tokens. Random weights never close the reasoning early: it runs to
  ``--max-reasoning-tokens``, the grammar's bound.

Inputs: with ``--data`` (a data set from ``vla data build``) real batches through the
collator (vla.model.collator.Collator: 4 cameras x 2 frames as videos, the prompt, the
target), the codec fitted on its train split; without, synthetic tensors of the same
shapes: each camera one 2-frame video at ``--image-size`` (the default rig's 224x112),
``--prompt-tokens`` of prompt text and ``--reasoning-tokens`` of reasoning (about what the
default data set's collator gives), the meta-action and the codec's trajectory tokens.

It prints one table and writes JSON with ``--json-out``. It needs torch, transformers, peft
and accelerate only (no vLLM). Times are of this machine; out-of-memory search and peak
memory need a CUDA device (on a CPU they are reported as not measured).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"stage1": ROOT / "train/configs/cosmos_reason1_7b_stage1.yaml",
           "stage2": ROOT / "train/configs/cosmos_reason1_7b_stage2.yaml"}
GIB = 1024 ** 3
# usable memory of the cards the recipe targets (as nvidia-smi reports it):
# an H100 80 GB (81,559 MiB) and an H200 141 GB (143,771 MiB)
CARDS = {"80GB": 81_559 * 1024 ** 2, "141GB": 143_771 * 1024 ** 2}
META_TOKENS = 8  # a meta-action spelled with the project tokenizer, about


@dataclass
class StageResult:
    """One training stage's measurement."""

    stage: str
    batch: int
    steps: int
    trainable_parameters: int
    seconds_per_step: float
    samples_per_s: float
    tokens_per_s: float
    tokens_per_sample: float
    peak_memory_gib: float | None  # None: not measured (no CUDA)
    max_batch: dict = field(default_factory=dict)  # card -> largest batch that fits, or a note


@dataclass
class DecisionLatency:
    """Per-decision latency of greedy ``generate`` under the grammar (medians over runs)."""

    runs: int
    prompt_tokens: int
    prefill_ms: float
    reasoning_tokens: int
    reasoning_ms_per_token: float
    trajectory_tokens: int
    trajectory_ms_per_token: float
    other_tokens: int  # delimiters, meta-action, end of turn
    decision_ms: float


def read_recipe(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---- the model and its inputs --------------------------------------------------------------

@dataclass
class Bench:
    """What every measurement shares: the model, its tokenizer, codec and input source."""

    args: argparse.Namespace
    build: object  # vla.model.shapes.ShapeBuild
    model: object
    tokenizer: object
    codec: object
    processor: object | None
    samples: list | None  # data set rows (with --data), else synthetic inputs

    @property
    def device(self) -> str:
        return self.args.device


def setup(args) -> Bench:
    """Tokenizer, codec (fitted on ``--data``, else the default codec's settings unfitted:
    the grammar needs only its sizes), the shape's config and model on the device."""
    from vla.model.build import fit_default_codec
    from vla.model.shape_init import TOKENIZER_VOCAB, shape_preset
    from vla.model.shapes import build_shape
    from vla.model.tokenizer import project_corpus, train_tokenizer
    from vla.model.trajectory_tokens import trajectory_tokens
    from vla.trajectory.registry import default_codec

    corpus = project_corpus()
    samples = processor = None
    if args.data:
        from datasets import load_from_disk

        train = load_from_disk(str(args.data))["train"]
        samples = [train[i] for i in range(min(len(train), 64))]
        corpus += [s["reasoning"] for s in samples]
        codec = fit_default_codec(args.data, seed=args.seed)
    else:
        codec = default_codec()
    tokenizer = train_tokenizer(corpus, TOKENIZER_VOCAB,
                                extra_tokens=trajectory_tokens(codec.vocab_size))
    build = build_shape(args.shape, args.layers, dtype=args.dtype, tokenizer=tokenizer,
                        codebook_size=codec.vocab_size)
    if args.data:
        from vla.model.build import build_processor

        processor = build_processor(shape_preset(build, codec.vocab_size), tokenizer)
    model = build.instantiate(args.device, seed=args.seed)
    model.config.use_cache = False
    return Bench(args, build, model, tokenizer, codec, processor, samples)


def vision_grid(bench: Bench) -> tuple[int, int]:
    """(patch rows, patch columns) of one camera image at ``--image-size`` after the
    processor's resize (whole tokens within the shape preset's pixel budget)."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    from vla.model.shape_init import shape_preset

    preset = shape_preset(bench.build, bench.codec.vocab_size)
    width, height = bench.args.image_size
    h, w = smart_resize(height, width, factor=preset.token_side_px,
                        min_pixels=preset.min_image_pixels, max_pixels=preset.max_image_pixels)
    return h // preset.patch_size, w // preset.patch_size


def synthetic_batch(bench: Bench, batch: int, with_target: bool = True) -> dict:
    """Model inputs of the real shapes: per sample, ``--cameras`` 2-frame videos (one temporal
    patch each) framed by the vision delimiters, the prompt text, and (``with_target``) the
    output: reasoning, meta-action, trajectory tokens, end of turn, with labels on it."""
    import torch

    from vla.model.constraints import GrammarIds
    from vla.model.special_tokens import QWEN_SPECIAL_TOKENS, VIDEO_PAD, VISION_END, VISION_START

    args, tok, config = bench.args, bench.tokenizer, bench.build.config
    ids = GrammarIds.from_tokenizer(tok, bench.codec.vocab_size, bench.build.vocab_size)
    text_ids = torch.arange(len(QWEN_SPECIAL_TOKENS), ids.cot_start)  # the BPE's own ids
    gen = torch.Generator().manual_seed(args.seed)

    def text(n: int) -> list[int]:
        return text_ids[torch.randint(len(text_ids), (n,), generator=gen)].tolist()

    grid_h, grid_w = vision_grid(bench)
    per_camera = grid_h * grid_w // 4  # 2x2 merge
    cameras = []
    for _ in range(args.cameras):
        cameras += [tok.convert_tokens_to_ids(VISION_START)]
        cameras += [tok.convert_tokens_to_ids(VIDEO_PAD)] * per_camera
        cameras += [tok.convert_tokens_to_ids(VISION_END)]
    prompt = text(16) + cameras + text(max(args.prompt_tokens - 16, 0))
    target = []
    if with_target:
        traj = ids.traj_ids[torch.randint(len(ids.traj_ids), (bench.codec.num_tokens,),
                                          generator=gen).numpy()].tolist()
        target = ([ids.cot_start] + text(args.reasoning_tokens) + [ids.cot_end, ids.meta_start]
                  + text(META_TOKENS) + [ids.meta_end, ids.traj_start] + traj
                  + [ids.traj_end, ids.end_of_turn])
    row = torch.tensor(prompt + target)
    input_ids = row.repeat(batch, 1)
    labels = input_ids.clone()
    labels[:, :len(prompt)] = -100
    video_pad = tok.convert_tokens_to_ids(VIDEO_PAD)
    videos = batch * args.cameras
    patch = config.vision_config.patch_size
    temporal = config.vision_config.temporal_patch_size
    inputs = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "mm_token_type_ids": (input_ids == video_pad).int() * 2,
        "pixel_values_videos": torch.randn(videos * grid_h * grid_w,
                                           3 * temporal * patch * patch, generator=gen),
        "video_grid_thw": torch.tensor([[1, grid_h, grid_w]] * videos),
    }
    if with_target:
        inputs["labels"] = labels
    if bench.build.shape.arch == "qwen2_5_vl":
        inputs["second_per_grid_ts"] = torch.full((videos,), 1.0)
    return inputs


def collated_batch(bench: Bench, batch: int) -> dict:
    """A real training batch of ``batch`` data set rows through the collator."""
    from vla.model.collator import Collator

    rows = [bench.samples[i % len(bench.samples)] for i in range(batch)]
    inputs = Collator(bench.processor, bench.codec)(rows)
    inputs.pop("span_ids", None)
    return dict(inputs)


def training_batch(bench: Bench, batch: int) -> dict:

    return on_device(bench, (collated_batch if bench.samples else synthetic_batch)(bench, batch))


def on_device(bench: Bench, inputs: dict) -> dict:
    """``inputs`` on the bench's device, the pixels in the model's dtype."""
    import torch

    dtype = getattr(torch, bench.args.dtype)
    return {k: v.to(bench.device, dtype) if k.startswith("pixel_values") else v.to(bench.device)
            for k, v in inputs.items()}


# ---- training ------------------------------------------------------------------------------

def prepare_stage(bench: Bench, stage: str, recipe: dict):
    """The module to train and its optimizer: LoRA for stage 2; the injected rows for stage 1
    (everything else frozen, gradients masked to the rows past the published vocabulary)."""
    import torch

    model = bench.model
    if stage == "stage2":
        from peft import get_peft_model

        from vla.model.lora import lora_config

        model = get_peft_model(model, lora_config(recipe["lora_rank"], recipe["lora_alpha"],
                                                  recipe["lora_dropout"]))
    else:
        from vla.training.run import _restrict_to_new_rows

        _restrict_to_new_rows(model, bench.build.shape.published_vocab)
    if recipe.get("gradient_checkpointing", True):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    fused = bench.device.startswith("cuda")
    optimizer = torch.optim.AdamW(params, lr=float(recipe["learning_rate"]),
                                  weight_decay=float(recipe.get("weight_decay", 0.0)), fused=fused)
    return model, optimizer, sum(p.numel() for p in params)


def train_step(bench: Bench, model, optimizer, inputs: dict) -> None:
    """Forward with the loss, backward, optimizer step (bf16 autocast as the trainer's)."""
    import torch

    device_type = "cuda" if bench.device.startswith("cuda") else "cpu"
    with torch.autocast(device_type, dtype=getattr(torch, bench.args.dtype),
                        enabled=bench.args.dtype != "float32"):
        loss = model(**inputs).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def fits(bench: Bench, model, optimizer, batch: int) -> bool:
    """Whether one training step at ``batch`` runs without running out of memory."""
    import torch

    try:
        train_step(bench, model, optimizer, training_batch(bench, batch))
        synchronize(bench.device)
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        optimizer.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()


def largest_batch(bench: Bench, model, optimizer, start: int, limit: int) -> int:
    """The largest batch whose step fits: doubling from ``start`` while it fits (up to
    ``limit``), then bisecting between the last fit and the first failure to within 1/8."""
    lo, hi = 0, None
    batch = start
    while batch <= limit:
        if not fits(bench, model, optimizer, batch):
            hi = batch
            break
        lo, batch = batch, batch * 2
    if hi is None:
        return lo
    while hi - lo > max(1, lo // 8):
        mid = (lo + hi) // 2
        if fits(bench, model, optimizer, mid):
            lo = mid
        else:
            hi = mid
    return lo


def search_cards(bench: Bench, model, optimizer, start: int, deadline: float) -> dict:
    """Largest batch per card (:data:`CARDS`), the smaller card emulated by capping this
    process's share of the device's memory."""
    import torch

    if not bench.device.startswith("cuda") or not bench.args.search:
        return dict.fromkeys(CARDS, "not measured")
    total = torch.cuda.get_device_properties(torch.device(bench.device)).total_memory
    out = {}
    for card, capacity in CARDS.items():
        if time.perf_counter() > deadline:
            out[card] = "skipped (time limit)"
            continue
        if capacity > total * 1.01:
            out[card] = f"not measured (this device has {total / GIB:.1f} GiB)"
            continue
        torch.cuda.set_per_process_memory_fraction(min(1.0, capacity / total))
        try:
            out[card] = largest_batch(bench, model, optimizer, start, bench.args.max_batch_limit)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
    return out


def measure_stage(bench: Bench, stage: str, deadline: float) -> tuple[StageResult, object]:
    """Time ``--steps`` training steps of ``stage`` after ``--warmup`` steps, then search the
    largest batches. Returns the result and the model (LoRA still attached for stage 2)."""
    import torch

    recipe = read_recipe(RECIPES[stage])
    batch = bench.args.batch or int(recipe["batch_size"])
    model, optimizer, trainable = prepare_stage(bench, stage, recipe)
    inputs = training_batch(bench, batch)
    tokens = int(inputs["attention_mask"].sum())
    for _ in range(bench.args.warmup):  # kernels, the optimizer's states
        train_step(bench, model, optimizer, inputs)
    synchronize(bench.device)
    cuda = bench.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(bench.args.steps):
        train_step(bench, model, optimizer, inputs)
    synchronize(bench.device)
    seconds = (time.perf_counter() - start) / bench.args.steps
    peak = torch.cuda.max_memory_allocated() / GIB if cuda else None
    del inputs
    result = StageResult(stage, batch, bench.args.steps, trainable, round(seconds, 4),
                         round(batch / seconds, 3), round(tokens / seconds, 1),
                         tokens / batch, None if peak is None else round(peak, 2))
    result.max_batch = search_cards(bench, model, optimizer, batch, deadline)
    del optimizer
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result, model


def release_stage(bench: Bench, model, stage: str) -> None:
    """Back to the plain model: LoRA layers removed, everything frozen (stage 1's gradient
    masks stay on the embeddings, inert), no checkpointing."""
    if stage == "stage2":
        bench.model = model.unload()
    bench.model.gradient_checkpointing_disable()
    for param in bench.model.parameters():
        param.requires_grad_(False)
        param.grad = None


# ---- generation ----------------------------------------------------------------------------

def decision_latency(bench: Bench) -> DecisionLatency:
    """Greedy decisions under the grammar, timed at every step of ``generate``: the first
    logits call ends the prefill; each later one ends the step that wrote a token of the
    phase the grammar was in."""
    import torch
    from transformers import LogitsProcessorList

    from vla.model.constraints import REASONING, TRAJ, GrammarLogitsProcessor, OutputGrammar

    args = bench.args
    grammar = OutputGrammar.for_model(bench.tokenizer, bench.codec, bench.build.vocab_size,
                                      args.max_reasoning_tokens)
    if bench.samples:
        from vla.model.generate import prompt_inputs

        inputs = on_device(bench, dict(prompt_inputs(bench.processor, bench.samples[0])))
    else:
        inputs = on_device(bench, synthetic_batch(bench, 1, with_target=False))
    prompt_len = inputs["input_ids"].shape[1]

    class Timed(GrammarLogitsProcessor):
        def __call__(self, input_ids, scores):
            synchronize(bench.device)
            scores = super().__call__(input_ids, scores)
            self.marks.append((self._states[0][1][0], time.perf_counter()))
            return scores

    model = bench.model.eval()
    model.config.use_cache = True
    runs = []
    for _ in range(args.warmup + args.decisions):
        timed = Timed(grammar, prompt_len)
        timed.marks = []
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=grammar.max_new_tokens, do_sample=False,
                           temperature=None, top_p=None, top_k=None,
                           logits_processor=LogitsProcessorList([timed]),
                           eos_token_id=grammar.ids.end_of_turn,
                           pad_token_id=bench.tokenizer.pad_token_id)
        synchronize(bench.device)
        end = time.perf_counter()
        marks = timed.marks
        steps = [(marks[i][0], marks[i][1] - marks[i - 1][1]) for i in range(1, len(marks))]
        reasoning = [dt for phase, dt in steps if phase == REASONING]
        trajectory = [dt for phase, dt in steps if phase == TRAJ]
        runs.append(dict(prefill=marks[0][1] - start, reasoning=reasoning,
                         trajectory=trajectory,
                         other=len(marks) - len(reasoning) - len(trajectory),
                         total=end - start))
    runs = runs[args.warmup:]

    def ms_per_token(key):
        return round(1000 * statistics.median(statistics.mean(r[key]) for r in runs), 2)

    return DecisionLatency(
        runs=len(runs), prompt_tokens=prompt_len,
        prefill_ms=round(1000 * statistics.median(r["prefill"] for r in runs), 2),
        reasoning_tokens=len(runs[0]["reasoning"]),
        reasoning_ms_per_token=ms_per_token("reasoning"),
        trajectory_tokens=len(runs[0]["trajectory"]),
        trajectory_ms_per_token=ms_per_token("trajectory"),
        other_tokens=runs[0]["other"],
        decision_ms=round(1000 * statistics.median(r["total"] for r in runs), 2))


# ---- report --------------------------------------------------------------------------------

def device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        return f"{props.name} ({props.total_memory / GIB:.1f} GiB)"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def table_rows(stages: list[StageResult], latency: DecisionLatency) -> list[tuple[str, str]]:
    """(measure, value) rows of the printed table."""
    rows = []
    for s in stages:
        peak = "not measured" if s.peak_memory_gib is None else f"{s.peak_memory_gib:.2f} GiB"
        rows += [
            (f"{s.stage} batch", str(s.batch)),
            (f"{s.stage} trainable parameters", f"{s.trainable_parameters:,}"),
            (f"{s.stage} samples/s", f"{s.samples_per_s:.3f}"),
            (f"{s.stage} tokens/s", f"{s.tokens_per_s:,.0f}"),
            (f"{s.stage} peak memory", peak),
        ]
        rows += [(f"{s.stage} largest batch ({card})", str(value))
                 for card, value in s.max_batch.items()]
    rows += [
        ("decision prompt tokens", str(latency.prompt_tokens)),
        ("decision prefill", f"{latency.prefill_ms:.1f} ms"),
        (f"decision reasoning ({latency.reasoning_tokens} tokens)",
         f"{latency.reasoning_ms_per_token:.2f} ms/token"),
        (f"decision trajectory ({latency.trajectory_tokens} tokens)",
         f"{latency.trajectory_ms_per_token:.2f} ms/token"),
        ("decision total", f"{latency.decision_ms:.1f} ms"),
    ]
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    from vla.model.shapes import SHAPES

    def size(text: str) -> tuple[int, int]:
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
        return w, h

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="cosmos-reason1-7b", choices=sorted(SHAPES))
    parser.add_argument("--layers", type=int, default=None,
                        help="language layers (default: the full depth)")
    parser.add_argument("--device", default=None, help="default: cuda where there is one")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--batch", type=int, default=None,
                        help="training batch of both stages (default: each recipe's)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per stage")
    parser.add_argument("--data", default=None, help="a data set: real batches via the collator")
    parser.add_argument("--image-size", type=size, default=(224, 112), metavar="WxH",
                        help="synthetic camera images (default: the default rig's 224x112)")
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--prompt-tokens", type=int, default=360,
                        help="synthetic prompt text tokens besides the cameras")
    parser.add_argument("--reasoning-tokens", type=int, default=32,
                        help="synthetic reasoning tokens of the training target")
    parser.add_argument("--max-reasoning-tokens", type=int, default=96,
                        help="the grammar's reasoning bound at generation")
    parser.add_argument("--decisions", type=int, default=3, help="timed decisions")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed steps (and decisions) before the timed ones")
    parser.add_argument("--no-search", dest="search", action="store_false",
                        help="skip the largest-batch search")
    parser.add_argument("--max-batch-limit", type=int, default=1024)
    parser.add_argument("--time-limit-s", type=float, default=420.0,
                        help="largest-batch searches not started after this many seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    for name in ("steps", "decisions", "cameras", "max_reasoning_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    args = parse_args(argv)
    began = time.perf_counter()
    deadline = began + args.time_limit_s
    bench = setup(args)
    stages = []
    for stage in ("stage2", "stage1"):
        result, model = measure_stage(bench, stage, deadline)
        release_stage(bench, model, stage)
        stages.append(result)
    latency = decision_latency(bench)
    build = bench.build
    report = {
        "shape": build.shape.name, "source": build.shape.source, "layers": build.layers,
        "vision_depth": build.vision_depth, "vocab_size": build.vocab_size, "dtype": args.dtype,
        "device": device_name(args.device),
        "parameters": sum(p.numel() for p in bench.model.parameters()),
        "inputs": "collator on " + str(args.data) if args.data else "synthetic",
        "stages": {s.stage: asdict(s) for s in stages}, "decision": asdict(latency),
        "seconds": round(time.perf_counter() - began, 1),
    }
    table = Table(title=f"{build.shape.name}, {build.layers} layers, {args.dtype}, "
                        f"{report['device']}, {report['inputs']} inputs")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in table_rows(stages, latency):
        table.add_row(name, value)
    Console().print(table)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
