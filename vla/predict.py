"""``vla predict``: one sample through a model policy (transformers, under the output grammar
unless asked otherwise), as a ``predict`` trace record."""

from __future__ import annotations

from pathlib import Path

from vla import traces
from vla.data.build import load_dataset_dir
from vla.policy import one


def load_sample(data_dir, index: int, split: str = "test") -> dict:
    """Row ``index`` of ``split``, or an error naming the splits / the range."""
    dataset, _meta = load_dataset_dir(data_dir)
    if split not in dataset:
        raise ValueError(f"unknown split {split!r}; the data set has {list(dataset)}")
    if not 0 <= index < len(dataset[split]):
        raise IndexError(f"index {index} out of range: split {split!r} has "
                         f"{len(dataset[split])} samples")
    return dataset[split][index]


def predict(policy, sample: dict, model: str | None = None,
            trace_path: str | Path | None = None) -> dict:
    """The greedy decision of ``policy`` (a :class:`vla.policy.Policy`) on ``sample`` as a
    ``predict`` trace record (its JSON), appended to ``trace_path`` when given; ``model``
    names the model in the record (default: the policy's name)."""
    record = traces.predict_record(one(policy, sample), sample,
                                   model or policy.name).to_json()
    if trace_path is not None:
        traces.append_trace(trace_path, record)
    return record


def predict_from_dirs(model_dir, data_dir, index: int, split: str = "test",
                      constrained: bool = True, trace_path: str | Path | None = None,
                      adapter: str | Path | None = None) -> dict:
    """``vla predict``: load the sample and the model (transformers) and :func:`predict`."""
    from vla.policy_factory import make_policy

    sample = load_sample(data_dir, index, split)
    policy = make_policy(model_dir=model_dir, adapter=adapter, constrained=constrained)
    return predict(policy, sample, str(model_dir), trace_path)
