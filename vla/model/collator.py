"""Training inputs from samples: chat with the assistant target, labels on the output only.

The prompt (system + user turn with the images, as :mod:`vla.model.prompting` builds
it, plus the generation prompt) is masked with -100; the assistant's output — reasoning,
meta-action, trajectory tokens and the end-of-turn token — carries the loss. Each batch
also reports how many tokens went to the cameras (image and video tokens), the rest of
the prompt, the reasoning, the meta-action and the trajectory, and carries ``span_ids``: for
every token, which part of the output it belongs to (:data:`SPANS`; 0 for the prompt and
padding), so that a trainer can split the loss by span. Each camera's frames go to the model
as one video where they fill whole temporal patches (:mod:`vla.model.visual_inputs`).
``blank_images`` replaces every camera frame, still image or video frame, by a black one of
the same size (the "does vision matter?" ablation).

``kinematics_dropout`` hides, in that share of the training samples (drawn at random from a
seeded generator), the ego's own motion from the prompt: the history, speed, acceleration and
yaw rate read "not given" (:func:`vla.model.prompting.hide_kinematics`), and the trajectory
tokens of those samples carry no loss (they are residuals over a prior of the hidden speed).
Those samples can only be explained from the cameras, so the model cannot learn its decisions
from the ego's kinematics alone: modality dropout against the shortcut the prompt offers.

Samples of converted driving logs may lack parts of the target (:mod:`vla.convert`): without
a causal label (empty ``reasoning``) the reasoning span (its delimiters included) carries no
loss, so the model learns the meta-action and trajectory from them without learning to write
empty reasoning; where the logged future ends before the horizon (``future_valid``), the
trajectory tokens that cover padded steps carry no loss: for a codec of fixed-length segments
(the default k-means segment codec, one token per ``segment_s``) the tokens of the segments
that reach past the log's end; for the other codecs, whose tokens do not map to stretches of
time, every trajectory token of that sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from vla.model.prompting import assistant_target, chat_prompt, hide_kinematics
from vla.model.special_tokens import (
    COT_END,
    COT_START,
    IM_END,
    IMAGE_PAD,
    META_ACTION_END,
    META_ACTION_START,
    TRAJ_FUTURE_END,
    TRAJ_FUTURE_START,
    VIDEO_PAD,
)
from vla.model.visual_inputs import processor_inputs, visual_inputs
from vla.trajectory.types import ego_state_of

IGNORE = -100
# span ids: 1 = reasoning (<|cot_start|> .. <|cot_end|>), 2 = meta-action (its delimiters
# included), 3 = trajectory (<|traj_future_start|> .. the end-of-turn token)
SPANS = {"reasoning": 1, "meta_action": 2, "trajectory": 3}


def blank_like(images: list) -> list:
    """Black RGB images of the same sizes (the "does vision matter?" ablation)."""
    return [Image.new("RGB", im.size) for im in images]


@dataclass
class Collator:
    """Callable on a list of samples (dataset rows) → model inputs with ``labels``."""

    processor: object
    codec: object
    blank_images: bool = False
    token_counts: dict = field(default_factory=dict)
    kinematics_dropout: float = 0.0  # share of samples shown without the ego's own motion
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.kinematics_dropout < 1.0:
            raise ValueError(f"kinematics_dropout must be in [0, 1), got "
                             f"{self.kinematics_dropout}")
        self._rng = np.random.default_rng(self.seed)

    def target_text(self, sample: dict) -> str:
        ids = self.codec.encode(np.asarray(sample["future"], float),
                                ego_state_of(sample, with_label=True))
        return assistant_target(sample["reasoning"], sample["decision_lon"],
                                sample["decision_lat"], ids)

    def __call__(self, samples: list[dict]):
        tok = self.processor.tokenizer
        texts, media, hidden = [], [], []
        for sample in samples:
            hidden.append(bool(self.kinematics_dropout)
                          and self._rng.random() < self.kinematics_dropout)
            if hidden[-1]:
                sample = hide_kinematics(sample)
            images = [im.convert("RGB") for im in sample["images"]]
            if self.blank_images:
                images = blank_like(images)
            texts.append(chat_prompt(self.processor, sample, images)
                         + self.target_text(sample) + IM_END)
            media.append(visual_inputs(sample, images))
        tok.padding_side = "right"
        batch = processor_inputs(self.processor, texts, media, padding=True)
        # the assistant's output starts at <|cot_start|>, which the prompt never contains
        cot_start = tok.convert_tokens_to_ids(COT_START)
        prompt_lens = [row.tolist().index(cot_start) for row in batch["input_ids"]]
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = IGNORE
        for row, n in enumerate(prompt_lens):
            labels[row, :n] = IGNORE
        batch["labels"] = labels
        spans = self._span_ids(batch["input_ids"], prompt_lens, labels)
        for row, hide in enumerate(hidden):  # no trajectory loss without the ego's speed
            if hide:
                trajectory = spans[row] == SPANS["trajectory"]
                labels[row, trajectory] = IGNORE
                spans[row, trajectory] = 0
        for row, sample in enumerate(samples):
            if not str(sample.get("reasoning") or "").strip():  # a log without a causal label
                reasoning = spans[row] == SPANS["reasoning"]
                labels[row, reasoning] = IGNORE
                spans[row, reasoning] = 0
            padded = self._padded_tokens(sample)
            if padded:
                first = (spans[row] == SPANS["trajectory"]).nonzero()
                if len(first):  # <|traj_future_start|>, then one token per entry
                    start = int(first[0]) + 1 + self.codec.num_tokens - padded
                    labels[row, start:start + padded] = IGNORE
                    spans[row, start:start + padded] = 0
        batch["span_ids"] = spans
        self.token_counts = self._count(batch, prompt_lens)
        return batch

    def _padded_tokens(self, sample: dict) -> int:
        """How many trailing trajectory tokens cover future steps past the end of the log
        (``future_valid``; 0 for simulator samples): the segments that reach past it for a
        codec of time segments (``seg_len`` steps a token), all of them for the others."""
        valid = sample.get("future_valid")
        if not valid or all(valid):
            return 0
        seg_len = getattr(self.codec, "seg_len", None)
        if seg_len is None:
            return self.codec.num_tokens
        return self.codec.num_tokens - int(sum(valid)) // seg_len

    def _span_ids(self, ids, prompt_lens, labels):
        tok = self.processor.tokenizer
        meta_start, traj_start = (tok.convert_tokens_to_ids(t) for t in (
            META_ACTION_START, TRAJ_FUTURE_START))
        spans = labels.new_zeros(labels.shape)
        for row, n in enumerate(prompt_lens):
            seq = ids[row].tolist()
            i_meta, i_traj = seq.index(meta_start, n), seq.index(traj_start, n)
            spans[row, n:i_meta] = SPANS["reasoning"]
            spans[row, i_meta:i_traj] = SPANS["meta_action"]
            spans[row, i_traj:] = SPANS["trajectory"]
        spans[labels == IGNORE] = 0
        return spans

    def _count(self, batch, prompt_lens) -> dict:
        tok = self.processor.tokenizer
        ids = batch["input_ids"]
        camera_ids = {tok.convert_tokens_to_ids(t) for t in (IMAGE_PAD, VIDEO_PAD)}
        cot_end, traj_start, traj_end, meta_end = (tok.convert_tokens_to_ids(t) for t in (
            COT_END, TRAJ_FUTURE_START, TRAJ_FUTURE_END, META_ACTION_END))
        counts = {"image": 0, "prompt_text": 0, "reasoning": 0, "meta_action": 0,
                  "trajectory": 0, "padding": int((batch["attention_mask"] == 0).sum())}
        for row, n in enumerate(prompt_lens):
            seq = ids[row].tolist()
            counts["image"] += sum(t in camera_ids for t in seq[:n])
            counts["prompt_text"] += sum(t not in camera_ids for t in seq[:n])
            out = seq[n:]
            i_cot, i_meta = out.index(cot_end), out.index(meta_end)
            i_ts, i_te = out.index(traj_start), out.index(traj_end)
            counts["reasoning"] += i_cot - 1
            counts["meta_action"] += i_meta - i_cot - 2
            counts["trajectory"] += i_te - i_ts - 1
        return counts
