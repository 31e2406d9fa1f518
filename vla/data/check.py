"""``vla data check``: validate a built data set and summarise it."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
from PIL import Image

from vla.data.build import MIN_EPISODES_TO_STRATIFY, SPLITS, load_dataset_dir
from vla.data.stats import label_stats, prior_agreement
from vla.meta_action import LATERAL, LONGITUDINAL

REQUIRED = ("sample_id", "images", "camera_names", "frame_times", "history", "future",
            "ego_speed", "command", "decision_lon", "decision_lat", "critical", "reasoning",
            "metric_cache")


def _blank(image_bytes: bytes) -> bool:
    array = np.asarray(Image.open(io.BytesIO(image_bytes)).convert("L"), float)
    return float(array.std()) < 2.0


def _episodes_per_event(split, converted: bool = False) -> dict[str, int]:
    """``{event: episodes}`` of a split (one event per simulated episode; a converted scene or
    clip counts under its stratum, :func:`vla.convert.writer.episode_strata`)."""
    columns = split.select_columns(["episode_id", "scenario"])
    if converted:
        from vla.convert.writer import episode_strata

        strata = episode_strata(columns["episode_id"], columns["scenario"])
        return dict(sorted(Counter(strata.values()).items()))
    pairs = set(zip(columns["episode_id"], columns["scenario"], strict=True))
    return dict(sorted(Counter(event for _, event in pairs).items()))


def _stratification_problems(events_by_split: dict[str, dict[str, int]]) -> list[str]:
    """An event with at least 3 episodes in all, present in train, but absent from
    validation or test (the build splits each event over all three)."""
    total: Counter = Counter()
    for counts in events_by_split.values():
        total.update(counts)
    problems = []
    for event in sorted(events_by_split.get("train", {})):
        if total[event] < MIN_EPISODES_TO_STRATIFY:
            continue
        absent = [s for s in ("validation", "test") if s in events_by_split
                  and not events_by_split[s].get(event)]
        if absent:
            problems.append(f"event {event!r} has {total[event]} episodes but none in "
                            f"{' or '.join(absent)}")
    return problems


def check_dataset(path, image_sample_every: int = 7) -> dict:
    """Validate schema, images and labels; return the summary (raises nothing on bad rows)."""
    import json

    dataset, meta = load_dataset_dir(path)
    converted = bool(meta.get("converted_from"))
    problems: list[str] = []
    for split in SPLITS:
        # fewer than 3 converted scenes or clips cannot fill all three splits
        if split not in dataset and not (converted and meta.get("episodes", 0)
                                         < MIN_EPISODES_TO_STRATIFY):
            problems.append(f"missing split {split!r}")
    pairs: Counter = Counter()
    weighted = {"agreement": 0.0, "agreement_lon": 0.0, "agreement_lat": 0.0}
    samples = 0
    prior_counts: dict[str, list[float]] = {}  # group -> [samples, equal, compatible]
    blank = checked_images = 0
    episodes_by_split: dict[str, set] = {}
    events_by_split: dict[str, dict[str, int]] = {}
    for name, split in dataset.items():
        missing = [c for c in REQUIRED if c not in split.column_names]
        if missing:
            problems.append(f"split {name}: missing columns {missing}")
            continue
        stats = label_stats(split)
        pairs.update(stats["pairs"])
        for key in weighted:
            weighted[key] += stats[key] * stats["samples"]
        samples += stats["samples"]
        for group, rates in prior_agreement(split).items():
            n = rates["samples"]
            counts = prior_counts.setdefault(group, [0, 0.0, 0.0])
            counts[0] += n
            counts[1] += rates["prior_equal_lon"] * n
            counts[2] += rates["prior_compatible_lon"] * n
        episodes_by_split[name] = set(split["episode_id"])
        # the scenario column holds the episode's scripted event
        events_by_split[name] = _episodes_per_event(split, converted)
        raw = split.cast_column("images", split.features["images"].__class__(
            split.features["images"].feature.__class__(decode=False)))
        n_cams = len(meta["cameras"]) * meta["frames"]
        for i in range(0, len(raw), image_sample_every):
            row = raw[i]
            if len(row["images"]) != n_cams or len(row["camera_names"]) != n_cams:
                problems.append(f"{name}[{i}]: {len(row['images'])} images, expected {n_cams}")
            for image in row["images"]:
                checked_images += 1
                blank += _blank(image["bytes"])
            if row["decision_lon"] not in LONGITUDINAL or row["decision_lat"] not in LATERAL:
                problems.append(f"{name}[{i}]: unknown decision {row['decision_lon']}/"
                                f"{row['decision_lat']}")
            future = np.asarray(row["future"])
            if future.shape != (int(meta["horizon_s"] * meta["future_hz"]), 3) \
                    or not np.isfinite(future).all():
                problems.append(f"{name}[{i}]: future has shape {future.shape} or non-finite")
            valid = row.get("future_valid")
            if valid is not None and (len(valid) != len(future) or not valid[0]
                                      or sorted(valid, reverse=True) != list(valid)):
                problems.append(f"{name}[{i}]: future_valid is not a run of real steps "
                                f"followed by padding, one per future step")
            json.loads(row["metric_cache"])
    seen: dict = {}
    for name, episodes in episodes_by_split.items():
        for e in episodes:
            if e in seen:
                problems.append(f"episode {e} is in both {seen[e]} and {name}")
            seen[e] = name
    problems += _stratification_problems(events_by_split)
    if blank:
        problems.append(f"{blank} of {checked_images} checked images are blank")
    total = max(samples, 1)
    skipped = {}
    if converted:
        skipped = {
            "label_derived_agreement": "the labels of converted logs are derived from the "
                                       "logged future itself, so they agree by construction",
            "critical components and their grounding": "logs carry no simulator ground "
                                                       "truth of who matters and why",
            "drivable area": "logs carry no lane map: off-road metrics are not available",
        }
    return {
        "source": meta.get("source", "sim"),
        "samples": samples,
        "episodes": len(seen),
        "dropped_episodes": meta.get("dropped_episodes", 0),
        "skipped_samples": meta.get("skipped", {}),
        "decision_classes": len(pairs),
        "max_class_share": round(max(pairs.values()) / total, 4) if pairs else 1.0,
        "label_derived_agreement": None if converted
        else round(weighted["agreement"] / total, 4),
        "label_derived_agreement_lon": None if converted
        else round(weighted["agreement_lon"] / total, 4),
        "label_derived_agreement_lat": None if converted
        else round(weighted["agreement_lat"] / total, 4),
        # the prompt's kinematics giving the longitudinal decision away (vla.data.stats)
        "prior_compatible_lon": {group: round(c / max(n, 1), 4)
                                 for group, (n, _e, c) in prior_counts.items()},
        "prior_equal_lon": {group: round(e / max(n, 1), 4)
                            for group, (n, e, _c) in prior_counts.items()},
        "keyframes_per_min_per_core": meta.get("keyframes_per_min_per_core"),
        "checked_images": checked_images,
        "blank_images": blank,
        "split_events": {s: events_by_split[s] for s in SPLITS if s in events_by_split},
        "distribution": dict(pairs.most_common()),
        "skipped_checks": skipped,
        "problems": problems,
        "ok": not problems,
    }
