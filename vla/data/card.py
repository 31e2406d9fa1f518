"""The data set card (README.md in the data set folder)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from vla.data.stats import label_stats


def _origin(meta: dict) -> str:
    """Where the samples come from: a simulator build, or driving logs converted
    (``converted_from`` in the metadata)."""
    if meta.get("converted_from"):
        return (f"Converted from `{meta['source']}` logs ({meta['converted_from']}), seed "
                f"{meta['seed']}: {meta['episodes']} scenes or clips, {meta['samples']} samples "
                f"(left out, by reason: {meta.get('skipped') or 'none'}).")
    return (f"Built from highway-env with recipe `{meta['recipe']}`, seed {meta['seed']}: "
            f"{meta['episodes']} episodes simulated, {meta['dropped_episodes']} dropped "
            f"(ego crashed or left the road: {meta['dropped_reasons']}), {meta['samples']} "
            "samples.")


def _contents(meta: dict) -> str:
    rig = (f"Each sample: {len(meta['cameras'])} cameras ({', '.join(meta['cameras'])}) × "
           f"{meta['frames']} frames, ")
    if meta.get("converted_from"):
        return (rig + f"{meta['history_s']} s of ego history, the logged future over up to "
                f"{meta['horizon_s']} s at {meta['future_hz']} Hz (ego frame at t0: x forward, y "
                "left, yaw counter-clockwise; `future_valid` marks the logged steps), the "
                "meta-action derived from it (`decision_lon`, `decision_lat`), the log's own "
                "reasoning text where it has one (`reasoning`, else empty), and the metric cache "
                "(`metric_cache`, JSON: annotated agents, no drivable area). Splits are by scene "
                "or clip (`split_events` in `vla_data.json`).")
    return (rig + f"a top-down view, {meta['history_s']} s of ego history, the future "
            f"trajectory over {meta['horizon_s']} s at {meta['future_hz']} Hz (ego frame at t0: "
            "x forward, y left, yaw counter-clockwise), the Cause-of-Change label "
            "(`decision_lon`, `decision_lat`, `critical` as JSON, `reasoning`) and the metric "
            "cache (`metric_cache`, JSON). Splits are by episode, stratified by event type "
            "(`split_events` in `vla_data.json`).")


def _agreement(meta: dict, agreement: float) -> str:
    speed = (f"Build speed: {meta.get('keyframes_per_min_per_core', 'not measured')} "
             "keyframes per minute per core.")
    if meta.get("converted_from"):  # labels derived from the future: agreement is no check
        return "The meta-actions are derived from the logged future. " + speed
    return f"Label / derived meta-action agreement (both axes): {agreement:.3f}. " + speed


def write_card(folder: Path, meta: dict, dataset) -> None:
    pairs: Counter = Counter()
    scenarios: Counter = Counter()
    agree = []
    for split in dataset.values():
        s = label_stats(split)
        pairs.update(s["pairs"])
        scenarios.update(s["scenarios"])
        agree.append((s["agreement"], s["samples"]))
    total = max(sum(pairs.values()), 1)
    agreement = sum(a * n for a, n in agree) / total
    lines = [
        "# vla driving scenes",
        "",
        _origin(meta),
        "",
        "| split | samples |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in meta["split_samples"].items()],
        "",
        _contents(meta),
        "",
        _agreement(meta, agreement),
        "",
        "## Scenario mix (samples)",
        "",
        "| scenario | samples |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in scenarios.most_common()],
        "",
        "## Decisions (longitudinal / lateral)",
        "",
        "| decision | samples | share |",
        "|---|---|---|",
        *[f"| {k} | {v} | {v / total:.3f} |" for k, v in pairs.most_common()],
        "",
        "## Generation config",
        "",
        "```json",
        json.dumps(meta["config"], indent=2),
        "```",
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines))
