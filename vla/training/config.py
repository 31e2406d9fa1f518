"""Run configuration of a training stage: a YAML file, overridable with ``key=value``.

One dataclass for both supervised stages. ``stage`` says which:

- ``inject``: stage 1, full fine-tuning (``train_scope: all``; the tiny preset's
  pretraining on the scenes) or only the injected token rows of a real checkpoint
  (``train_scope: new_rows``: input and output rows from ``first_new_id`` on, the rest
  frozen), saved as a new base with ``save_pretrained``;
- ``sft``: stage 2, a LoRA adapter (peft) on the language model's attention of the
  stage-1 base, trained on reasoning + meta-action + trajectory, saved as an adapter.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from vla.model.expected_entry import check_trajectory_decoding

STAGES = ("inject", "sft")
TRAIN_SCOPES = ("all", "new_rows")


@dataclass
class RunConfig:
    stage: str
    model: str                       # stage 1: the base; stage 2: the stage-1 output
    data: str                        # a built data set (``vla data build``)
    out: str                         # run folder: checkpoints, logs, final model / adapter
    max_steps: int = 200
    batch_size: int = 8              # per process
    grad_accum: int = 1
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    save_steps: int = 50             # a checkpoint every N optimiser steps
    save_total_limit: int = 2
    logging_steps: int = 5
    seed: int = 0
    dtype: str = "float32"           # float32 | bfloat16
    gradient_checkpointing: bool = False
    train_scope: str = "all"         # stage 1 only
    lora_rank: int = 16              # stage 2 only
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    blank_images: bool = False       # ablation: every camera image black, in training and eval
    eval_split: str = "validation"  # choices are read off validation; test is for reporting
    eval_samples: int = 64           # validation at the end of the stage; 0 skips it
    max_reasoning_tokens: int = 96
    dataloader_workers: int = 0
    trajectory_loss_weight: float = 1.0  # weight of each trajectory token in the mean loss
    meta_action_loss_weight: float = 1.0  # weight of each meta-action token in the mean loss
    kinematics_dropout: float = 0.0  # share of training samples without the ego's motion
    trajectory_decoding: str = "greedy"  # in the validation: greedy | expected (entry)
    mix: str = ""                    # DIR:WEIGHT,... more data sets' train splits (vla.data.mix)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.train_scope not in TRAIN_SCOPES:
            raise ValueError(f"train_scope must be one of {TRAIN_SCOPES}, "
                             f"got {self.train_scope!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        for name in ("max_steps", "batch_size", "grad_accum", "save_steps", "logging_steps",
                     "lora_rank", "max_reasoning_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_samples < 0 or self.dataloader_workers < 0:
            raise ValueError("eval_samples and dataloader_workers must be >= 0")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        check_trajectory_decoding(self.trajectory_decoding)
        from vla.data.mix import parse_mix

        parse_mix(self.mix)  # refuses a malformed entry before anything loads
        if not 0.0 <= self.kinematics_dropout < 1.0:
            raise ValueError(f"kinematics_dropout must be in [0, 1), got "
                             f"{self.kinematics_dropout}")
        for name in ("trajectory_loss_weight", "meta_action_loss_weight"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def final_dir(self) -> Path:
        """Where the stage's product goes: the new base (stage 1) or the adapter (stage 2)."""
        return self.out_dir / ("model" if self.stage == "inject" else "adapter")


def _coerce(name: str, kind, text: str):
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"override {name}={text!r}: expected true or false")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"override {name}={text!r}: expected {kind.__name__}") from None


def parse_overrides(items: list[str], config_cls=None) -> dict:
    """``["max_steps=10", "out=runs/x"]`` → typed values, by the field types of the dataclass
    ``config_cls`` (default :class:`RunConfig`)."""
    config_cls = config_cls or RunConfig
    hints = typing.get_type_hints(config_cls)
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        if name not in hints:
            raise ValueError(f"unknown config key {name!r}; known: "
                             f"{', '.join(f.name for f in dataclasses.fields(config_cls))}")
        kind = hints[name]
        if isinstance(kind, types.UnionType):
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        if kind not in (bool, int, float, str):
            raise ValueError(f"{name} cannot be set on the command line; set it in the file")
        out[name] = _coerce(name, kind, text)
    return out


def load_run_config(path: str | Path | None, overrides: list[str] = (), **fixed) -> RunConfig:
    """Read a YAML run config, apply ``key=value`` overrides and ``fixed`` values."""
    import yaml

    values: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"run config {p} does not exist")
        values = yaml.safe_load(p.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{p}: a run config is a mapping of keys to values")
        known = {f.name for f in dataclasses.fields(RunConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{p}: unknown keys {unknown}")
    values.update(parse_overrides(list(overrides)))
    for key, value in fixed.items():
        if key in values and values[key] != value:
            raise ValueError(f"{key} is {values[key]!r} in the config, but this entry point "
                             f"runs {key}={value!r}")
        values[key] = value
    missing = [f.name for f in dataclasses.fields(RunConfig)
               if f.default is dataclasses.MISSING and f.name not in values]
    if missing:
        raise ValueError(f"run config is missing {missing}")
    return RunConfig(**values)
