"""End-of-stage validation: constrained greedy decoding on a split, scored against the labels.

For each sample the model writes reasoning, a meta-action and trajectory tokens under the
output grammar (transformers ``generate``). Reported: parse rate; decision accuracy per axis
(the written meta-action against the label; an unparsable output counts as wrong);
consistency per axis (the written meta-action against the one the deriver reads from the
decoded trajectory, over parsed outputs); ADE / FDE over 0-3 s and over the whole horizon
(over parsed outputs). The kinematic baselines are scored on the same samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla.meta_action import MetaAction, derive_meta_action, is_consistent
from vla.trajectory.baselines import BASELINES
from vla.trajectory.types import TrajectorySpec, ego_state_of

HORIZON_3S = 3.0


def trajectory_errors(pred: np.ndarray, gt: np.ndarray, hz: float) -> dict[str, float]:
    """ADE / FDE over the first 3 s and over the whole horizon (m)."""
    err = np.linalg.norm(np.asarray(pred)[:, :2] - np.asarray(gt)[:, :2], axis=-1)
    n3 = int(round(HORIZON_3S * hz))
    return {"ade_3s": float(err[:n3].mean()), "fde_3s": float(err[n3 - 1]),
            "ade": float(err.mean()), "fde": float(err[-1])}


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(float(np.mean(values)), 4) if values else None


def score_outputs(records: list[dict]) -> dict:
    """Aggregate per-sample records (see :func:`validate`) into the validation metrics."""
    n = len(records)
    parsed = [r for r in records if r["parsed"]]
    out = {"samples": n, "parse_rate": round(len(parsed) / n, 4) if n else None}
    for axis in ("lon", "lat"):
        out[f"decision_accuracy_{axis}"] = round(
            sum(r["parsed"] and r[f"correct_{axis}"] for r in records) / n, 4) if n else None
        out[f"consistency_{axis}"] = _mean(
            [{"v": float(r[f"consistent_{axis}"])} for r in parsed], "v")
    out["decision_accuracy"] = round(
        sum(r["parsed"] and r["correct_lon"] and r["correct_lat"] for r in records) / n,
        4) if n else None
    out["consistency"] = _mean(
        [{"v": float(r["consistent_lon"] and r["consistent_lat"])} for r in parsed], "v")
    for key in ("ade_3s", "fde_3s", "ade", "fde"):
        out[key] = _mean(parsed, key)
    return out


def baseline_metrics(samples, spec: TrajectorySpec) -> dict[str, dict]:
    out = {}
    for name, planner in BASELINES.items():
        rows = [trajectory_errors(planner(ego_state_of(s), spec), np.asarray(s["future"]),
                                  spec.hz) for s in samples]
        out[name] = {key: _mean(rows, key) for key in ("ade_3s", "fde_3s", "ade", "fde")}
    return out


def blanked(sample: dict) -> dict:
    from PIL import Image

    return {**sample, "images": [Image.new("RGB", im.size) for im in sample["images"]]}


def validate(loaded, samples, max_reasoning_tokens: int = 96, blank_images: bool = False,
             trace_path: str | Path | None = None, progress: bool = True) -> dict:
    """Greedy constrained outputs on ``samples``; metrics, baselines and per-sample records."""
    from tqdm import tqdm

    from vla.model.generate import generate_decision
    from vla.traces import append_trace, decision_fields

    spec = loaded.codec.spec
    records = []
    for sample in tqdm(samples, desc="validation", disable=not progress, leave=False):
        if blank_images:
            sample = blanked(sample)
        gen = generate_decision(loaded, sample, max_reasoning_tokens=max_reasoning_tokens)
        row = {"sample_id": sample["sample_id"], "scenario": sample["scenario"],
               "parsed": gen.decision is not None}
        if gen.decision is not None:
            written = gen.decision.meta_action
            derived = derive_meta_action(gen.decision.trajectory, float(sample["ego_speed"]),
                                         spec.hz)
            lon_ok, lat_ok = is_consistent(written, derived)
            label = MetaAction(sample["decision_lon"], sample["decision_lat"])
            row.update(correct_lon=written.longitudinal == label.longitudinal,
                       correct_lat=written.lateral == label.lateral,
                       consistent_lon=lon_ok, consistent_lat=lat_ok,
                       **trajectory_errors(gen.decision.trajectory,
                                           np.asarray(sample["future"]), spec.hz))
        records.append(row)
        if trace_path is not None:
            append_trace(trace_path, {
                "kind": "eval", "sample_id": sample["sample_id"], "model": str(loaded.path),
                **decision_fields(gen.text, gen.decision, gen.error, sample),
                "label": {"longitudinal": sample["decision_lon"],
                          "lateral": sample["decision_lat"], "reasoning": sample["reasoning"]},
                "metrics": {k: v for k, v in row.items() if k not in ("sample_id", "scenario")},
                "tokens": {"prompt": gen.prompt_tokens, "completion": gen.completion_tokens},
                "seconds": round(gen.seconds, 3)})
    return {"model": score_outputs(records), "baselines": baseline_metrics(samples, spec),
            "records": records}


def results_table(results: dict[str, dict], title: str):
    """A rich table: one row per model / baseline, the validation metrics as columns."""
    from rich.table import Table

    columns = ("parse_rate", "decision_accuracy_lon", "decision_accuracy_lat", "consistency",
               "ade_3s", "fde_3s", "ade", "fde")
    table = Table(title=title)
    table.add_column("")
    for col in columns:
        table.add_column(col.replace("decision_accuracy", "acc").replace("_", " "),
                         justify="right")
    for name, metrics in results.items():
        table.add_row(name, *("–" if metrics.get(c) is None else f"{metrics[c]:.3f}"
                              for c in columns))
    return table
