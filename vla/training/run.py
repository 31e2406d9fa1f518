"""Run one supervised stage (stage 1 injection / pretraining, stage 2 LoRA SFT) to the end.

The loop is transformers' ``Trainer`` (optimiser, schedule, gradient accumulation, DDP and
DeepSpeed through accelerate, checkpoints, resuming with the data order and RNG restored);
this module chooses what trains, wires the collator and the span-split loss, and adds:

- resuming by re-running the same command: the last *complete* checkpoint (one whose
  ``trainer_state.json`` was written, which the Trainer does last) is picked up, and log
  records of steps done after it are dropped, so every step appears once in the log;
- the stage's product in ``<out>/model`` (stage 1: a new base, ``save_pretrained``, with
  the processor and the codec) or ``<out>/adapter`` (stage 2: the LoRA adapter);
- a PNG of the curves, validation on the evaluation split, and ``<out>/result.json``; a
  run whose ``result.json`` matches its config is not redone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from vla.jsonfile import write_json
from vla.traces import trim_log
from vla.training.config import RunConfig
from vla.training.span_trainer import LOG_FILE, JsonlLogger, SpanLossTrainer, plot_curves

RESULT_FILE = "result.json"
CHECKPOINTS = "checkpoints"


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The highest ``checkpoint-N`` whose trainer state was written and parses."""
    if not folder.is_dir():
        return None
    done = []
    for path in folder.glob("checkpoint-*"):
        state = path / "trainer_state.json"
        try:
            step = int(path.name.split("-")[1])
            json.loads(state.read_text())
        except (ValueError, IndexError, OSError):
            continue
        done.append((step, path))
    return max(done)[1] if done else None


def finished_result(config: RunConfig) -> dict | None:
    """The stage's result if it already ran to the end with this config."""
    path = config.out_dir / RESULT_FILE
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if result.get("config") != dataclasses.asdict(config):
        return None
    return result if (config.final_dir / "adapter_config.json").is_file() or (
        config.final_dir / "config.json").is_file() else None


def _world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def training_arguments(config: RunConfig):
    import torch
    from transformers import TrainingArguments

    cpu = not torch.cuda.is_available()
    world = _world()[1]
    return TrainingArguments(
        output_dir=str(config.out_dir / CHECKPOINTS),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type=config.lr_scheduler,
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        bf16=config.dtype == "bfloat16",
        gradient_checkpointing=config.gradient_checkpointing,
        remove_unused_columns=False,
        dataloader_num_workers=config.dataloader_workers,
        dataloader_pin_memory=not cpu,
        use_cpu=cpu,
        ddp_backend="gloo" if cpu and world > 1 else None,
        average_tokens_across_devices=False,
        report_to=[],
        disable_tqdm=False,
    )


def _restrict_to_new_rows(model, first_new: int) -> None:
    """Train only the input / output rows from ``first_new`` on; freeze everything else."""
    import torch

    for param in model.parameters():
        param.requires_grad_(False)
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        weight = module.weight
        weight.requires_grad_(True)
        keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
        keep[first_new:] = 1
        weight.register_hook(lambda grad, keep=keep: grad * keep)


def build_model(config: RunConfig):
    import torch

    from vla.model.arch import load_pretrained

    model = load_pretrained(config.model, dtype=getattr(torch, config.dtype))
    if config.stage == "inject":
        if config.train_scope == "new_rows":
            meta = json.loads((Path(config.model) / "vla_model.json").read_text())
            if meta.get("vocab_before") is None:
                raise ValueError(f"{config.model} was not made by `vla model inject` (no "
                                 "vocab_before in vla_model.json): use train_scope=all")
            if config.weight_decay:
                raise ValueError("train_scope=new_rows needs weight_decay=0 (decay would "
                                 "move the frozen rows)")
            # the first injected id: below vocab_before where the tokenizer was shorter than
            # the checkpoint's embedding; older injections recorded only vocab_before and the
            # number of added tokens, which the saved tokenizer ends with
            first_new = meta.get("first_new_id")
            if first_new is None:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(config.model)
                first_new = min(meta["vocab_before"], len(tokenizer) - meta["added_tokens"])
            _restrict_to_new_rows(model, first_new)
        return model
    from peft import get_peft_model

    from vla.model.lora import lora_config

    return get_peft_model(model, lora_config(config.lora_rank, config.lora_alpha,
                                             config.lora_dropout))


def run_stage(config: RunConfig, console=None) -> dict:
    """Train (or resume) the stage, save its product, validate; returns ``result.json``."""
    from rich.console import Console
    from transformers import AutoProcessor

    from vla.data.build import load_dataset_dir
    from vla.data.mix import mixed_train_split, parse_mix
    from vla.model.collator import Collator
    from vla.model.constraints import GrammarIds
    from vla.model.loading import load_codec_of

    console = console or Console()
    done = finished_result(config)
    if done is not None:
        console.print(f"{config.out_dir}: stage {config.stage} already done, reused")
        return done
    rank, _world_size = _world()
    args = training_arguments(config)  # before the model: ZeRO-3 partitions at load time
    processor = AutoProcessor.from_pretrained(config.model)
    codec = load_codec_of(config.model)
    dataset, data_meta = load_dataset_dir(config.data)
    if config.eval_split not in dataset:
        raise ValueError(f"{config.data} has no split {config.eval_split!r}")
    model = build_model(config)
    traj_ids = GrammarIds.from_tokenizer(processor.tokenizer, codec.vocab_size).traj_ids
    log_path = config.out_dir / LOG_FILE
    last = last_complete_checkpoint(config.out_dir / CHECKPOINTS)
    if rank == 0:
        if last is None:
            log_path.unlink(missing_ok=True)
        else:
            dropped = trim_log(log_path, int(last.name.split("-")[1]))
            console.print(f"resuming from {last} ({dropped} log records after it dropped)")
    train = mixed_train_split(dataset["train"], parse_mix(config.mix), config.seed, data_meta)
    trainer = SpanLossTrainer(model=model, args=args, train_dataset=train,
                              data_collator=Collator(processor, codec, config.blank_images,
                                                     kinematics_dropout=config.kinematics_dropout,
                                                     seed=config.seed),
                              callbacks=[JsonlLogger(log_path)], trajectory_token_ids=traj_ids,
                              trajectory_loss_weight=config.trajectory_loss_weight,
                              meta_action_loss_weight=config.meta_action_loss_weight)
    output = trainer.train(resume_from_checkpoint=str(last) if last else None)
    final = config.final_dir
    trainer.save_model(str(final))
    if not trainer.is_world_process_zero():
        return {}
    _complete_product(config, processor, codec)
    result = {"config": dataclasses.asdict(config), "global_step": trainer.state.global_step,
              "train_seconds": round(output.metrics.get("train_runtime", 0.0), 1),
              "final": str(final), "curves": str(plot_curves(
                  log_path, config.out_dir / "curves.png", f"stage {config.stage}"))}
    if config.eval_samples:
        result["validation"] = validate_stage(config, dataset[config.eval_split], console,
                                              dataset.get("train"))
    write_json(config.out_dir / RESULT_FILE, result)
    return result


def _complete_product(config: RunConfig, processor, codec) -> None:
    """Make ``final_dir`` a loadable vla model (stage 1) or a self-describing adapter."""
    from vla.model.build import CODEC_DIR, VLA_META_FILE

    final = config.final_dir
    meta = json.loads((Path(config.model) / VLA_META_FILE).read_text())
    if config.stage == "inject":
        processor.save_pretrained(final)
        if (final / CODEC_DIR).exists():
            shutil.rmtree(final / CODEC_DIR)
        codec.save(final / CODEC_DIR)
        meta.update(trained={"stage": "inject", "scope": config.train_scope,
                             "data": config.data, "steps": config.max_steps,
                             "blank_images": config.blank_images})
        (final / VLA_META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    else:
        (final / "vla_adapter.json").write_text(json.dumps(
            {"base": str(Path(config.model).resolve()), "stage": "sft", "data": config.data,
             "steps": config.max_steps, "lora_rank": config.lora_rank,
             "blank_images": config.blank_images}, indent=2) + "\n")


def validate_stage(config: RunConfig, split, console, train=None) -> dict:
    """The stage's validation on ``split``, beside the blind rows (the learned one fitted on
    ``train`` when given)."""
    from vla.data.subsets import stratified_subset, subset_record
    from vla.policy_factory import make_policy
    from vla.reference import blind_policies
    from vla.training.validate import results_table, validate

    adapter = config.final_dir if config.stage == "sft" else None
    base = config.model if config.stage == "sft" else config.final_dir
    policy = make_policy(model_dir=base, adapter=adapter,
                         max_reasoning_tokens=config.max_reasoning_tokens,
                         trajectory_decoding=config.trajectory_decoding)
    samples, indices = stratified_subset(split, config.eval_samples, return_indices=True)
    (config.out_dir / "validation.jsonl").unlink(missing_ok=True)
    out = validate(policy, samples, config.blank_images,
                   trace_path=config.out_dir / "validation.jsonl",
                   references=blind_policies(train))
    label = f"stage {config.stage}" + (" (blank images)" if config.blank_images else "")
    if config.trajectory_decoding != "greedy":
        label += f", {config.trajectory_decoding} entry"
    console.print(results_table({label: out["model"], **out["references"],
                                 **out["baselines"]},
                                f"validation on {config.eval_split} ({len(samples)} samples)"))
    return {"split": config.eval_split, "samples": len(samples), "model": out["model"],
            "references": out["references"], "baselines": out["baselines"],
            "subset": subset_record(indices, 0, len(split))}
