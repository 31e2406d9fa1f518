"""``vla predict``: one sample through transformers generation under the output grammar."""

from __future__ import annotations

from pathlib import Path

from vla.data.build import load_dataset_dir
from vla.model.generate import generate_decision
from vla.model.loading import load_model_dir
from vla.traces import append_trace, decision_fields


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
    record = {
        "kind": "predict",
        "sample_id": sample["sample_id"],
        "model": str(model_dir),
        **decision_fields(gen.text, gen.decision, gen.error, sample),
        "label": {"longitudinal": sample["decision_lon"], "lateral": sample["decision_lat"],
                  "reasoning": sample["reasoning"]},
        "tokens": {"prompt": gen.prompt_tokens, "completion": gen.completion_tokens},
        "seconds": round(gen.seconds, 3),
    }
    if trace_path is not None:
        append_trace(trace_path, record)
    return record
