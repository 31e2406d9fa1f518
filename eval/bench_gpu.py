"""Benchmark of the GPU recipe on one GPU, with a random-weight exact-shape model.

    python eval/bench_gpu.py [--shape cosmos-reason1-7b] [--data DIR] [--json-out OUT]
    python eval/bench_gpu.py --device cpu --layers 1 --batch 1 --steps 2   # a check on a CPU
    python eval/bench_gpu.py --device cpu --layers 1 --narrow ...   # a quick check of the bench

The model is an exact shape (vla/model/shapes.py) at full depth in bf16 (``--layers`` cuts
it; ``--narrow`` shrinks its widths and vocabulary for a check of the bench itself, see
:func:`narrow_shape`), built on the device with random weights: nothing is downloaded. It
measures

* stage 2 of train/configs/cosmos_reason1_7b_stage2.yaml: LoRA (the recipe's rank, alpha and
  dropout) on the language model's attention, gradient checkpointing, AdamW, the recipe's
  batch and gradient accumulation; stage 1 of ..._stage1.yaml: only the injected embedding
  and output-head rows train (full-size gradients masked to them, as the trainer does). The
  loss is the trainer's (vla.training.span_trainer.span_loss: the output head only over the
  labelled part, the recipe's span weights); the optimizer steps once per ``grad_accum``
  micro-batches. For each stage: seconds per optimizer step and per sample, samples/s,
  tokens/s (non-padding tokens), peak memory, and the largest micro-batch that fits on an
  80 GB and a 141 GB card (:func:`largest_batch`: doubling from the recipe's batch, then
  bisecting, catching out-of-memory; a card smaller than the device is emulated, see
  :func:`search_cards`);
* the latency of one decision under the output grammar (transformers ``generate``, greedy,
  batch 1): the prefill (vision tower and prompt), and per token the reasoning and the
  trajectory tokens. Random weights may close the reasoning at any point, so the bench
  holds ``<|cot_end|>`` back until ``--max-reasoning-tokens`` (the grammar's bound): every
  decision writes the longest reasoning the grammar allows.

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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"stage1": ROOT / "train/configs/cosmos_reason1_7b_stage1.yaml",
           "stage2": ROOT / "train/configs/cosmos_reason1_7b_stage2.yaml"}
GIB = 1024 ** 3
# usable memory of the cards the recipe targets (as nvidia-smi reports it):
# an H100 80 GB (81,559 MiB) and an H200 141 GB (143,771 MiB)
CARDS = {"80GB": 81_559 * 1024 ** 2, "141GB": 143_771 * 1024 ** 2}
META_TOKENS = 8  # a meta-action spelled with the project tokenizer, about
NARROW_VISION_HEADS = 2  # the vision tower's heads under --narrow


@dataclass
class StageResult:
    """One training stage's measurement."""

    stage: str
    batch: int  # samples per micro-batch
    grad_accum: int  # micro-batches per optimizer step
    steps: int  # timed optimizer steps
    trainable_parameters: int
    seconds_per_step: float  # per optimizer step (grad_accum micro-batches)
    seconds_per_sample: float
    samples_per_s: float
    tokens_per_s: float
    tokens_per_sample: float
    peak_memory_gib: float | None  # None: not measured (no CUDA)
    # device memory the process holds outside the caching allocator (the CUDA context and
    # libraries), taken off each card's capacity in the search; None: not measured
    context_gib: float | None = None
    max_batch: dict = field(default_factory=dict)  # card -> largest micro-batch, or a note


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
    span_weights: dict = field(default_factory=dict)  # the stage's loss weight per span id

    @property
    def device(self) -> str:
        return self.args.device


def narrow_shape(shape, vocab_size: int):
    """``shape`` (a :class:`vla.model.shapes.ExactShape`) at a small fraction of its width, for
    a check of the bench itself, not a measurement of the checkpoint: the language model keeps
    its head size and its ratio of query to key/value heads with one key/value head, the vision
    tower its head size with :data:`NARROW_VISION_HEADS` heads, each MLP its ratio to its
    width; the published vocabulary becomes ``vocab_size`` (our added rows still follow it).
    Depth, block layout (full-attention blocks, DeepStack layers), patching, rotary sections
    and tied or untied embeddings stay as published."""
    text, vision = dict(shape.text), dict(shape.vision)
    head_dim = int(text.get("head_dim", text["hidden_size"] // text["num_attention_heads"]))
    heads = text["num_attention_heads"] // text["num_key_value_heads"]
    hidden = heads * head_dim
    vision_head = vision["hidden_size"] // vision["num_heads"]
    vision_hidden = NARROW_VISION_HEADS * vision_head

    def scaled(size: int, width: int, was: int) -> int:  # multiples of 16
        return max(16, round(size * width / was / 16) * 16)

    text.update(hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=1,
                intermediate_size=scaled(text["intermediate_size"], hidden,
                                         text["hidden_size"]),
                vocab_size=vocab_size)
    vision.update(hidden_size=vision_hidden, num_heads=NARROW_VISION_HEADS,
                  intermediate_size=scaled(vision["intermediate_size"], vision_hidden,
                                           vision["hidden_size"]),
                  out_hidden_size=hidden)
    return replace(shape, name=f"{shape.name}-narrow", source=f"{shape.source}, narrowed",
                   text=MappingProxyType(text), vision=MappingProxyType(vision),
                   published_parameters=0)


def setup(args) -> Bench:
    """Tokenizer, codec (fitted on ``--data``, else the default codec's settings unfitted:
    the grammar needs only its sizes), the shape's config (narrowed with ``--narrow``, its
    vocabulary then the tokenizer's rounded up to 64) and model on the device."""
    from vla.model.build import fit_default_codec
    from vla.model.shape_init import TOKENIZER_VOCAB, shape_preset
    from vla.model.shapes import build_shape, get_shape
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
    shape = get_shape(args.shape)
    if args.narrow:
        shape = narrow_shape(shape, -(-len(tokenizer) // 64) * 64)
    build = build_shape(shape, args.layers, dtype=args.dtype, tokenizer=tokenizer,
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
    output: reasoning, meta-action, trajectory tokens, end of turn, with labels and span ids
    on it (as the collator's: :data:`vla.model.collator.SPANS`)."""
    import torch

    from vla.model.collator import SPANS
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
    reasoning = meta = trajectory = []
    if with_target:
        traj = ids.traj_ids[torch.randint(len(ids.traj_ids), (bench.codec.num_tokens,),
                                          generator=gen).numpy()].tolist()
        reasoning = [ids.cot_start] + text(args.reasoning_tokens) + [ids.cot_end]
        meta = [ids.meta_start] + text(META_TOKENS) + [ids.meta_end]
        trajectory = [ids.traj_start] + traj + [ids.traj_end, ids.end_of_turn]
    row = torch.tensor(prompt + reasoning + meta + trajectory)
    input_ids = row.repeat(batch, 1)
    labels = input_ids.clone()
    labels[:, :len(prompt)] = -100
    spans = torch.tensor([0] * len(prompt) + [SPANS["reasoning"]] * len(reasoning)
                         + [SPANS["meta_action"]] * len(meta)
                         + [SPANS["trajectory"]] * len(trajectory)).repeat(batch, 1)
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
        inputs["span_ids"] = spans
    if bench.build.shape.arch == "qwen2_5_vl":
        inputs["second_per_grid_ts"] = torch.full((videos,), 1.0)
    return inputs


def collated_batch(bench: Bench, batch: int) -> dict:
    """A real training batch of ``batch`` data set rows through the collator (with its
    labels and span ids)."""
    from vla.model.collator import Collator

    rows = [bench.samples[i % len(bench.samples)] for i in range(batch)]
    return dict(Collator(bench.processor, bench.codec)(rows))


def training_batch(bench: Bench, batch: int) -> dict:
    """A micro-batch of ``batch`` samples on the device: the data set's or synthetic."""
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


def micro_step(bench: Bench, model, inputs: dict, grad_accum: int) -> None:
    """Forward with the trainer's loss (:func:`vla.training.span_trainer.span_loss`: the
    output head over the labelled part only, the recipe's span weights) under bf16 autocast
    as the trainer's, divided by ``grad_accum``, and backward: gradients accumulate."""
    import torch

    from vla.training.span_trainer import span_loss

    inputs = dict(inputs)
    labels, spans = inputs.pop("labels"), inputs.pop("span_ids")
    device_type = "cuda" if bench.device.startswith("cuda") else "cpu"
    with torch.autocast(device_type, dtype=getattr(torch, bench.args.dtype),
                        enabled=bench.args.dtype != "float32"):
        loss = span_loss(model, inputs, labels, spans, bench.span_weights).loss
    (loss / grad_accum).backward()


def train_step(bench: Bench, model, optimizer, inputs: dict, grad_accum: int) -> None:
    """One optimizer step: ``grad_accum`` micro-batches (here the same ``inputs`` each time)
    accumulated, then the step and the gradients cleared."""
    for _ in range(grad_accum):
        micro_step(bench, model, inputs, grad_accum)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def empty_cache() -> None:
    """Unreferenced tensors collected and the caching allocator's free blocks handed back."""
    import torch

    gc.collect()
    torch.cuda.empty_cache()


def fits(bench: Bench, model, optimizer, batch: int) -> bool:
    """Whether a training step with micro-batches of ``batch`` runs without running out of
    memory: one micro-batch and the optimizer step (more micro-batches add no memory). The
    cache is emptied before and after, so that no block reserved earlier escapes a cap."""
    import torch

    empty_cache()
    try:
        train_step(bench, model, optimizer, training_batch(bench, batch), grad_accum=1)
        synchronize(bench.device)
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        optimizer.zero_grad(set_to_none=True)
        empty_cache()


def largest_batch(fits: Callable[[int], bool], start: int, limit: int) -> int:
    """The largest batch ``b`` in ``1..limit`` with ``fits(b)``, assuming that whatever fits a
    batch fits the smaller ones, or 0 when not even 1 fits. Doubling from ``start`` (at most
    ``limit``) while it fits, then bisecting between the last batch that fit (0 when ``start``
    did not: then over ``[1, start)``) and the first that did not, until they are within 1/8
    of the fitting one (exactly under 16)."""
    if start < 1 or limit < 1:
        raise ValueError(f"start and limit must be >= 1, got start={start}, limit={limit}")
    lo, batch = 0, min(start, limit)
    while True:
        if not fits(batch):
            hi = batch
            break
        lo = batch
        if batch == limit:
            return lo
        batch = min(batch * 2, limit)
    while hi - lo > max(1, lo // 8):
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def context_bytes(device: str) -> int:
    """Device memory this process holds outside PyTorch's caching allocator (the CUDA context,
    library handles): used memory less the allocator's reservations, after emptying the cache.
    Assumes the device has no other user (another process's memory would count here)."""
    import torch

    empty_cache()
    free, total = torch.cuda.mem_get_info(torch.device(device))
    return total - free - torch.cuda.memory_reserved(torch.device(device))


def search_cards(bench: Bench, model, optimizer, start: int, deadline: float
                 ) -> tuple[dict, int | None]:
    """Largest micro-batch per card (:data:`CARDS`) and the memory outside the allocator (None
    when not measured). On a card of capacity C the allocator gets C less that memory, so the
    search caps this process's allocator at it
    (``torch.cuda.set_per_process_memory_fraction``: the cap limits reservations, hence the
    cache is emptied before it is set and before every probe)."""
    import torch

    if not bench.device.startswith("cuda") or not bench.args.search:
        return dict.fromkeys(CARDS, "not measured"), None
    context = context_bytes(bench.device)
    total = torch.cuda.mem_get_info(torch.device(bench.device))[1]
    out = {}
    for card, capacity in CARDS.items():
        if time.perf_counter() > deadline:
            out[card] = "skipped (time limit)"
            continue
        # a card of this size: the device's own report may be a few percent below the
        # listed capacity (an H200 reports about 139-140 GiB), which the cap then clips to
        if capacity > total * 1.03:
            out[card] = f"not measured (this device has {total / GIB:.1f} GiB)"
            continue
        empty_cache()
        torch.cuda.set_per_process_memory_fraction(max(0.0, min(1.0, (capacity - context)
                                                                / total)))
        try:
            out[card] = largest_batch(lambda b: fits(bench, model, optimizer, b), start,
                                      bench.args.max_batch_limit)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
    return out, context


def measure_stage(bench: Bench, stage: str, deadline: float) -> tuple[StageResult, object]:
    """Time ``--steps`` optimizer steps of ``stage`` (each of the recipe's ``grad_accum``
    micro-batches) after ``--warmup`` steps, then search the largest micro-batches. Returns
    the result and the model (LoRA still attached for stage 2)."""
    import torch

    recipe = read_recipe(RECIPES[stage])
    batch = bench.args.batch or int(recipe["batch_size"])
    grad_accum = bench.args.grad_accum or int(recipe.get("grad_accum", 1))
    bench.span_weights = span_weights(recipe)
    model, optimizer, trainable = prepare_stage(bench, stage, recipe)
    inputs = training_batch(bench, batch)
    tokens = int(inputs["attention_mask"].sum()) * grad_accum  # per optimizer step
    samples = batch * grad_accum
    for _ in range(bench.args.warmup):  # kernels, the optimizer's states
        train_step(bench, model, optimizer, inputs, grad_accum)
    synchronize(bench.device)
    cuda = bench.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(bench.args.steps):
        train_step(bench, model, optimizer, inputs, grad_accum)
    synchronize(bench.device)
    seconds = (time.perf_counter() - start) / bench.args.steps
    peak = torch.cuda.max_memory_allocated() / GIB if cuda else None
    del inputs
    result = StageResult(stage, batch, grad_accum, bench.args.steps, trainable,
                         round(seconds, 4), round(seconds / samples, 5),
                         round(samples / seconds, 3), round(tokens / seconds, 1),
                         tokens / samples, None if peak is None else round(peak, 2))
    result.max_batch, context = search_cards(bench, model, optimizer, batch, deadline)
    result.context_gib = None if context is None else round(context / GIB, 2)
    del optimizer
    if cuda:
        empty_cache()
    return result, model


def span_weights(recipe: dict) -> dict[int, float]:
    """The recipe's loss weight per span id (the trainer's defaults where it sets none)."""
    from vla.model.collator import SPANS
    from vla.training.config import RunConfig

    return {SPANS[span]: float(recipe.get(key, getattr(RunConfig, key)))
            for span, key in (("trajectory", "trajectory_loss_weight"),
                              ("meta_action", "meta_action_loss_weight"))}


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
    phase the grammar was in. ``<|cot_end|>`` is held back until the grammar's reasoning
    bound, so that every decision writes the longest reasoning (random weights would close
    it at a random point)."""
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
            phase, count, _ = self._states[0][1]
            if phase == REASONING and count < grammar.max_reasoning:
                scores[:, grammar.ids.cot_end] = -float("inf")
            self.marks.append((phase, time.perf_counter()))
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
            (f"{s.stage} batch", f"{s.batch} x {s.grad_accum} accumulated"),
            (f"{s.stage} trainable parameters", f"{s.trainable_parameters:,}"),
            (f"{s.stage} seconds per optimizer step", f"{s.seconds_per_step:.3f}"),
            (f"{s.stage} seconds per sample", f"{s.seconds_per_sample:.4f}"),
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
    parser.add_argument("--narrow", action="store_true",
                        help="a few heads wide and our tokenizer's vocabulary: a quick check "
                             "of the bench, not a measurement of the shape")
    parser.add_argument("--device", default=None, help="default: cuda where there is one")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--batch", type=int, default=None,
                        help="training micro-batch of both stages (default: each recipe's)")
    parser.add_argument("--grad-accum", type=int, default=None,
                        help="micro-batches per optimizer step (default: each recipe's)")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed optimizer steps per stage")
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
    for name in ("steps", "decisions", "cameras", "max_reasoning_tokens", "max_batch_limit"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("batch", "grad_accum"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
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
        "shape": build.shape.name, "source": build.shape.source, "narrow": args.narrow,
        "layers": build.layers,
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
