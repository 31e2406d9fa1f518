"""End-of-stage validation: constrained greedy decoding on a split, scored against the labels.

Validation is open-loop evaluation with validation's settings: the greedy output of a
:class:`vla.policy.Policy` on each sample (:func:`vla.evaluation.open_loop.greedy_outputs`),
no sampled outputs, no shortcut runs, and validation's own aggregation. For each sample the
model writes reasoning, a meta-action and trajectory tokens under the output grammar.
Reported: parse rate; decision accuracy per axis
(the written meta-action against the label; an unparsable output counts as wrong);
consistency per axis (the written meta-action against the one the deriver reads from the
decoded trajectory, over parsed outputs); ADE / FDE over 0-3 s and over the whole horizon
(over parsed outputs); correct-and-consistent (both at once, on both axes). The blind reference
rows (:func:`vla.reference.blind_policies`) are scored the same way on the same samples,
and the kinematic baselines (:func:`vla.reference.trajectory_baselines`) by their
trajectories.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla.metrics import real_steps
from vla.model.collator import blank_like
from vla.trajectory.metrics import horizon_errors

# the names of vla.metrics: l2_avg_3s is ADE@3 s (mean error up to 3 s), l2_at_3s FDE@3 s
VALIDATION_COLUMNS = ("parse_rate", "accuracy_lon", "accuracy_lat", "consistency",
                      "correct_and_consistent", "l2_avg_3s", "l2_at_3s", "ade", "fde")
TRAJECTORY_KEYS = ("l2_avg_3s", "l2_at_3s", "ade", "fde")


def trajectory_errors(pred: np.ndarray, sample: dict, hz: float) -> dict[str, float]:
    """ADE / FDE over the first 3 s and over the whole (logged) horizon (m)."""
    n = real_steps(sample)
    err = horizon_errors(np.asarray(pred)[:n], np.asarray(sample["future"])[:n], hz, (3.0,))
    return {key: err[key] for key in TRAJECTORY_KEYS}


def _rate(flags) -> float | None:
    flags = [float(f) for f in flags]
    return round(float(np.mean(flags)), 4) if flags else None


def score_outputs(records: list[dict]) -> dict:
    """Aggregate per-sample records (see :func:`validate`) into the validation metrics."""
    parsed = [r for r in records if r["parsed"]]
    out = {"samples": len(records), "parse_rate": _rate(r["parsed"] for r in records)}
    for axis in ("lon", "lat"):  # an unparsable output counts as a wrong decision
        out[f"accuracy_{axis}"] = _rate(
            r["parsed"] and r[f"correct_{axis}"] for r in records)
        out[f"consistency_{axis}"] = _rate(r[f"consistent_{axis}"] for r in parsed)
    out["accuracy"] = _rate(
        r["parsed"] and r["correct_lon"] and r["correct_lat"] for r in records)
    out["consistency"] = _rate(r["consistent_lon"] and r["consistent_lat"] for r in parsed)
    out["correct_and_consistent"] = _rate(  # an unparsable output counts as neither
        r["parsed"] and r["correct_lon"] and r["correct_lat"] and r["consistent_lon"]
        and r["consistent_lat"] for r in records)
    for key in TRAJECTORY_KEYS:
        out[key] = round(float(np.mean([r[key] for r in parsed])), 4) if parsed else None
    return out


def baseline_metrics(samples, hz: float = 10.0) -> dict[str, dict]:
    """The validation errors of the kinematic baselines' plans on ``samples``."""
    from vla.reference import trajectory_baselines

    out = {}
    for name, baseline in trajectory_baselines(expert=False).items():
        rows = [trajectory_errors(o.trajectory, s, hz)
                for s, o in zip(samples, baseline.decide(samples), strict=True)]
        out[name] = {key: round(float(np.mean([r[key] for r in rows])), 4) if rows else None
                     for key in TRAJECTORY_KEYS}
    return out


def decision_record(decision, sample: dict, hz: float) -> dict:
    """One sample's validation record of a decision (None: unparsable)."""
    from vla.metrics import decision_metrics

    row = {"sample_id": sample["sample_id"], "scenario": sample["scenario"],
           "parsed": decision is not None}
    if decision is not None:
        d = decision_metrics(decision, sample, hz)
        row.update(correct_lon=bool(d["accuracy_lon"]), correct_lat=bool(d["accuracy_lat"]),
                   consistent_lon=bool(d["consistency_lon"]),
                   consistent_lat=bool(d["consistency_lat"]),
                   **trajectory_errors(decision.trajectory, sample, hz))
    return row


def reference_metrics(samples, policies: dict, hz: float) -> dict[str, dict]:
    """The validation metrics of each reference policy (name → Policy) on ``samples``."""
    return {name: score_outputs([decision_record(o.decision, s, hz) for s, o in
                                 zip(samples, policy.decide(samples), strict=True)])
            for name, policy in policies.items()}


def validate(policy, samples, blank_images: bool = False,
             trace_path: str | Path | None = None, progress: bool = True,
             references: dict | None = None, hz: float | None = None) -> dict:
    """Greedy outputs of ``policy`` on ``samples``; metrics, the reference policies' metrics
    (``references``: name → Policy, default the blind rows without the learned one), the
    kinematic baselines and per-sample records. With ``trace_path``, one ``eval`` trace
    record per sample is appended as it is scored.

    ``blank_images`` shows the model blank images (what the text alone gives it); ``hz`` is
    the trajectory rate (default: the policy's codec's, else 10 Hz). The decoding settings
    (reasoning budget, trajectory decoding) are the policy's."""
    from vla.evaluation.open_loop import greedy_outputs
    from vla.reference import blind_policies
    from vla.traces import append_trace, eval_record

    samples = list(samples)
    codec = getattr(policy, "codec", None)
    hz = hz if hz is not None else (codec.spec.hz if codec is not None else 10.0)
    shown = [{**s, "images": blank_like(s["images"])} for s in samples] if blank_images \
        else samples
    records: list[dict] = []

    def score(_index: int, sample: dict, output) -> None:
        row = decision_record(output.decision, sample, hz)
        records.append(row)
        if trace_path is not None:
            metrics = {k: v for k, v in row.items() if k not in ("sample_id", "scenario")}
            append_trace(trace_path, eval_record(output, sample, policy.name, metrics))

    greedy_outputs(policy, shown, progress=progress, desc="validation", on_output=score)
    policies = blind_policies() if references is None else references
    return {"model": score_outputs(records),
            "references": reference_metrics(samples, policies, hz),
            "baselines": baseline_metrics(samples, hz), "records": records}


def results_table(results: dict[str, dict], title: str):
    """A rich table: one row per model / baseline, the validation metrics as columns."""
    from rich.table import Table

    columns = VALIDATION_COLUMNS
    table = Table(title=title)
    table.add_column("")
    for col in columns:
        table.add_column(col.replace("accuracy", "acc").replace("_", " "),
                         justify="right")
    for name, metrics in results.items():
        table.add_row(name, *("–" if metrics.get(c) is None else f"{metrics[c]:.3f}"
                              for c in columns))
    return table
