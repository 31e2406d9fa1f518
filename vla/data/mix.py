"""Training on several data sets at once: simulator scenes and converted driving logs.

``mix`` is ``DIR:WEIGHT[,DIR:WEIGHT...]``: data sets whose train splits are drawn from beside
the run's own ``data`` (weight 1), each with probability proportional to its weight, by
``datasets.interleave_datasets`` (seeded; until every set has been seen once in full). The
run's own data set keeps its validation split for the stage's validation.
"""

from __future__ import annotations

from pathlib import Path


def parse_mix(text: str) -> list[tuple[str, float]]:
    """``"runs/logs:0.5,runs/more:1"`` -> ``[("runs/logs", 0.5), ("runs/more", 1.0)]``; empty
    text gives ``[]``. A malformed entry or a weight that is not a positive number is refused,
    naming it."""
    out = []
    for item in (p.strip() for p in text.split(",") if p.strip()):
        path, sep, weight = item.rpartition(":")
        if not sep or not path:
            raise ValueError(f"mix entry {item!r} is not DIR:WEIGHT")
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(f"mix entry {item!r}: weight {weight!r} is not a number") from None
        if not value > 0:
            raise ValueError(f"mix entry {item!r}: weight must be > 0")
        out.append((path, value))
    return out


def _rig(meta: dict) -> dict:
    """What samples of two data sets must share to be trained on together."""
    return {"horizon_s": float(meta["horizon_s"]), "future_hz": float(meta["future_hz"]),
            "frame_gap_s": float(meta["config"]["samples"]["frame_gap_s"]),
            "images per sample": len(meta["cameras"]) * int(meta["frames"])}


def mixed_train_split(train, mix: list[tuple[str, float]], seed: int = 0,
                      meta: dict | None = None):
    """``train`` (weight 1) interleaved with the train splits of the data sets in ``mix``; the
    same ``train`` when ``mix`` is empty. Raises naming a data set that has no train split or
    whose horizon, rate, frame gap or images per sample differ from ``meta``'s (the run's own
    data set's metadata; without it, only the images per sample are compared)."""
    if not mix:
        return train
    from datasets import interleave_datasets

    from vla.data.build import features, load_dataset_dir

    sets, weights = [_with_schema(train)], [1.0]
    n_images = len(train[0]["camera_names"])
    for path, weight in mix:
        dataset, extra_meta = load_dataset_dir(Path(path))
        if "train" not in dataset:
            raise ValueError(f"mix: {path} has no train split")
        if meta is not None and _rig(extra_meta) != _rig(meta):
            raise ValueError(f"mix: {path} has {_rig(extra_meta)}, the run's data set "
                             f"{_rig(meta)}; convert or build it with the same settings")
        extra = _with_schema(dataset["train"])
        if len(extra[0]["camera_names"]) != n_images:
            raise ValueError(f"mix: {path} gives {len(extra[0]['camera_names'])} images per "
                             f"sample, the run's data set {n_images}; convert it with as many "
                             "cameras and frames")
        sets.append(extra)
        weights.append(weight)
    total = sum(weights)
    return interleave_datasets([s.cast(features()) for s in sets],
                               probabilities=[w / total for w in weights], seed=seed,
                               stopping_strategy="all_exhausted")


def _with_schema(split):
    """A split with the columns added since older builds (``source``, ``future_valid``)."""
    n = len(split)
    if "source" not in split.column_names:
        split = split.add_column("source", ["sim"] * n)
    if "future_valid" not in split.column_names:
        steps = len(split[0]["future"]) if n else 0
        split = split.add_column("future_valid", [[True] * steps] * n)
    return split
