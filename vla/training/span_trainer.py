"""transformers' Trainer with the loss split by output span, and a JSONL log of every record.

``SpanLossTrainer.compute_loss`` computes the usual next-token cross-entropy over the
assistant's output (the collator masks the prompt; the output head runs only from the
first labelled position on), optionally as a weighted mean in which each trajectory-span
token counts ``trajectory_loss_weight`` times and each meta-action token
``meta_action_loss_weight`` times (the trajectory and the decision are a few tokens against a
reasoning of dozens, so at equal weight the text dominates the gradient), and, from the same
logits, the unweighted mean
loss on the reasoning, the meta-action and the trajectory tokens, and the accuracy of the
arg-max on the trajectory tokens. These are averaged over the steps between two logging
events and added to the Trainer's own log record (loss, learning rate, grad norm), which
:class:`JsonlLogger` appends to ``train_log.jsonl``. The loss itself is :func:`span_loss`, a
plain function (``eval/bench_gpu.py`` measures the training step with it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from transformers import Trainer, TrainerCallback

from vla.model.collator import IGNORE, SPANS
from vla.traces import read_traces

LOG_FILE = "train_log.jsonl"


@dataclass
class SpanLoss:
    """One batch's loss and the tensors the span metrics are read from."""

    loss: object  # scalar tensor: the (weighted) mean cross-entropy over labelled tokens
    outputs: object  # the model's output; its logits cover the labelled part only
    logits: object  # float32 logits predicting ``target``, (batch, positions, vocabulary)
    target: object  # the labels from the batch's first labelled position on
    span: object  # the span ids of ``target``
    per_token: object  # unweighted cross-entropy per position of ``target`` (0 where ignored)


def span_loss(model, inputs: dict, labels, spans, span_weights: dict | None = None) -> SpanLoss:
    """The next-token cross-entropy of ``model`` on ``inputs`` (without labels) against
    ``labels``, as a mean over the labelled tokens in which a token of span id ``s`` counts
    ``span_weights[s]`` times (1 for spans not named). The output head runs only where a
    label follows: from the first labelled position of the batch on (``logits_to_keep``;
    the prompt is most of the sequence and its logits would be thrown away)."""
    import torch
    import torch.nn.functional as F

    labelled = (labels != IGNORE).any(0).nonzero()
    first = max(1, int(labelled[0])) if len(labelled) else labels.shape[1] - 1
    outputs = model(**inputs, logits_to_keep=labels.shape[1] - first + 1)
    logits = outputs.logits[:, :-1].float()
    target, span = labels[:, first:], spans[:, first:]
    per_token = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE,
                                reduction="none")
    weight = (target != IGNORE).float()
    for span_id, factor in (span_weights or {}).items():
        if factor != 1.0:
            weight = torch.where(span == span_id, weight * factor, weight)
    loss = (per_token * weight).sum() / weight.sum().clamp(min=1)
    return SpanLoss(loss, outputs, logits, target, span, per_token)


class SpanLossTrainer(Trainer):
    loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean

    def __init__(self, *args, trajectory_token_ids, trajectory_loss_weight: float = 1.0,
                 meta_action_loss_weight: float = 1.0, **kwargs):
        import torch

        super().__init__(*args, **kwargs)
        self.span_weights = {SPANS["trajectory"]: float(trajectory_loss_weight),
                             SPANS["meta_action"]: float(meta_action_loss_weight)}
        ids = torch.as_tensor(list(trajectory_token_ids), dtype=torch.long)
        self._is_traj = torch.zeros(int(ids.max()) + 1, dtype=torch.bool)
        self._is_traj[ids] = True  # token id -> is a <traj_k> token
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, float] = defaultdict(float)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        spans = inputs.pop("span_ids")
        labels = inputs.pop("labels")
        result = span_loss(model, inputs, labels, spans, self.span_weights)
        loss, outputs, logits = result.loss, result.outputs, result.logits
        target, span, per_token = result.target, result.span, result.per_token
        if model.training:
            with torch.no_grad():
                for name, sid in SPANS.items():
                    sel = span == sid
                    self._sums[f"loss_{name}"] += float(per_token[sel].sum())
                    self._counts[f"loss_{name}"] += float(sel.sum())
                known = (target >= 0) & (target < len(self._is_traj))
                is_traj = known & self._is_traj.to(target.device)[target.clamp(0, len(
                    self._is_traj) - 1)]
                hits = (logits.argmax(-1) == target) & is_traj
                self._sums["traj_token_accuracy"] += float(hits.sum())
                self._counts["traj_token_accuracy"] += float(is_traj.sum())
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training record: add the span metrics since the last one
            for key, total in self._sums.items():
                if self._counts[key]:
                    logs[key] = round(total / self._counts[key], 4)
            self._sums.clear()
            self._counts.clear()
        super().log(logs, start_time)


class JsonlLogger(TrainerCallback):
    """Appends every log record (with its step) to ``<out>/train_log.jsonl`` on rank 0."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def plot_curves(log_path: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Loss by span, trajectory-token accuracy and learning rate over steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_traces(log_path, missing_ok=True) if "loss" in r]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    steps = [r["step"] for r in records]
    for key in ("loss", "loss_reasoning", "loss_meta_action", "loss_trajectory"):
        axes[0].plot(steps, [r.get(key) for r in records], label=key)
    axes[0].set_yscale("log")
    axes[0].set_title("loss by span")
    axes[1].plot(steps, [r.get("traj_token_accuracy") for r in records])
    axes[1].set_title("trajectory-token accuracy")
    axes[2].plot(steps, [r.get("learning_rate") for r in records])
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
