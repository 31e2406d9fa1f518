"""``vla predict``: one sample through transformers generation under the output grammar."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla.data.build import load_dataset_dir
from vla.meta_action import derive_meta_action
from vla.model.generate import generate_decision
from vla.model.loading import load_model_dir
from vla.traces import append_trace


def predict_record(model_dir, data_dir, index: int, split: str = "test",
                   constrained: bool = True, trace_path: str | Path | None = None) -> dict:
    dataset, _meta = load_dataset_dir(data_dir)
    if split not in dataset:
        raise ValueError(f"unknown split {split!r}; the data set has {list(dataset)}")
    if not 0 <= index < len(dataset[split]):
        raise IndexError(f"index {index} out of range: split {split!r} has "
                         f"{len(dataset[split])} samples")
    sample = dataset[split][index]
    loaded = load_model_dir(model_dir)
    gen = generate_decision(loaded, sample, constrained=constrained)
    derived = None
    if gen.decision is not None and gen.decision.trajectory is not None:
        d = derive_meta_action(gen.decision.trajectory, float(sample["ego_speed"]))
        derived = {"longitudinal": d.longitudinal, "lateral": d.lateral}
    record = {
        "kind": "predict",
        "sample_id": sample["sample_id"],
        "model": str(model_dir),
        "raw_output": gen.text,
        "parsed": gen.decision is not None,
        "error": None if gen.error is None else {"kind": gen.error.kind,
                                                 "message": str(gen.error)},
        "decision": None if gen.decision is None else gen.decision.to_json(),
        "derived_meta_action": derived,
        "label": {"longitudinal": sample["decision_lon"], "lateral": sample["decision_lat"],
                  "reasoning": sample["reasoning"]},
        "ade_m": None if gen.decision is None else round(float(np.mean(np.linalg.norm(
            gen.decision.trajectory[:, :2] - np.asarray(sample["future"])[:, :2], axis=1))), 3),
        "tokens": {"prompt": gen.prompt_tokens, "completion": gen.completion_tokens},
        "seconds": round(gen.seconds, 3),
    }
    if trace_path is not None:
        append_trace(trace_path, record)
    return record
