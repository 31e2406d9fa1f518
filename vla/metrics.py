"""Per-sample metrics of one decision, the single layer under evaluation, validation and RL.

Decision metrics (:func:`decision_metrics`), against the sample's label:

- ``accuracy_lon`` / ``accuracy_lat`` / ``accuracy``: the written meta-action equals the
  label on that axis / on both;
- ``consistency_lon`` / ``consistency_lat`` / ``consistency``: the written meta-action agrees
  with the one the deriver reads from the trajectory that follows (:mod:`vla.meta_action`);
- ``correct_and_consistent``: both at once, on both axes: what a policy that writes the right
  decision and drives it scores, and what no blind policy can reach by agreeing with itself;
- ``grounding`` (with ``grounding_precision`` / ``grounding_recall``), ``states_meta_action``
  and ``situation_admits``: the reasoning checks of :mod:`vla.reasoning`.

Trajectory metrics (:func:`trajectory_metrics`), against the logged future and the metric
cache: ``ade`` / ``fde`` over the horizon, ``l2_at_Ns`` (the error *at* N s, UniAD's
convention) and ``l2_avg_Ns`` (the mean error *up to* N s, ST-P3's; ``l2_avg_3s`` is what
the tables call ADE@3 s), ``collision``, ``off_road`` and ``progress`` (:mod:`vla.scoring`).
"""

from __future__ import annotations

import numpy as np

from vla.meta_action import derive_meta_action, is_consistent
from vla.reasoning import coherence, grounding
from vla.scoring import score_against_cache
from vla.trajectory.metrics import horizon_errors

HORIZONS_S = (1.0, 2.0, 3.0)


def decision_metrics(decision, sample: dict, hz: float = 10.0) -> dict:
    """Every decision metric of one parsed :class:`~vla.model.parser.Decision` (floats in
    [0, 1], plus ``derived``: the meta-action the deriver reads, as text)."""
    meta = decision.meta_action
    derived = derive_meta_action(decision.trajectory, float(sample["ego_speed"]), hz)
    consistent_lon, consistent_lat = is_consistent(meta, derived)
    correct_lon = meta.longitudinal == sample["decision_lon"]
    correct_lat = meta.lateral == sample["decision_lat"]
    checks = coherence(decision.reasoning, meta)
    # a converted log has no ground truth of the critical facts: grounding is not available
    ground = None if is_log(sample) else grounding(decision.reasoning, sample)
    return {
        "accuracy_lon": float(correct_lon), "accuracy_lat": float(correct_lat),
        "accuracy": float(correct_lon and correct_lat),
        "consistency_lon": float(consistent_lon), "consistency_lat": float(consistent_lat),
        "consistency": float(consistent_lon and consistent_lat),
        "correct_and_consistent": float(correct_lon and correct_lat and consistent_lon
                                        and consistent_lat),
        "grounding": ground and ground.value,
        "grounding_precision": ground and ground.precision,
        "grounding_recall": ground and ground.recall,
        "states_meta_action": float(checks["states_meta_action"]),
        "situation_admits": float(checks["situation_admits"]),
        "derived": f"{derived.longitudinal}, {derived.lateral}",
    }


def is_log(sample: dict) -> bool:
    """True for a sample of a converted driving log (``source`` other than ``sim``; simulator
    builds from before the column have none)."""
    return sample.get("source", "sim") != "sim"


def real_steps(sample: dict) -> int:
    """How many steps of the sample's future are logged (``future_valid``; a converted log
    may end before the horizon): every step of a simulator sample."""
    valid = sample.get("future_valid")
    return len(sample["future"]) if valid is None else int(sum(valid))


def trajectory_metrics(pred: np.ndarray, sample: dict, hz: float = 10.0) -> dict:
    """Displacement errors in both conventions, and the metric cache's verdicts.

    Over the real part of the future only (``future_valid``: a converted log may end before
    the horizon; an error at an instant past its end is not reported). ``l2_avg_Ns_2hz`` is
    the ST-P3 average over the 2 Hz points (0.5 s, 1 s, ... N s), as published nuScenes tables
    compute it. ``off_road`` is None where the cache has no drivable area, ``collision`` where
    it has no agent boxes (converted logs): not available, never 0; collision and progress
    are judged over the real future too."""
    gt = np.asarray(sample["future"], float)
    pred = np.asarray(pred, float)
    n = real_steps(sample)
    out = horizon_errors(pred[:n], gt[:n], hz, tuple(h for h in HORIZONS_S if h * hz <= n))
    err = np.linalg.norm(pred[:n, :2] - gt[:n, :2], axis=-1)
    half = int(round(hz / 2))
    for h in HORIZONS_S:
        if h * hz <= n:
            out[f"l2_avg_{h:.0f}s_2hz"] = float(err[half - 1:int(round(h * hz)):half].mean())
    cache = score_against_cache(pred[:n], gt[:n], sample["metric_cache"], hz)
    out.update(collision=None if cache.collision is None else float(cache.collision),
               off_road=None if cache.off_road is None else float(cache.off_road))
    if cache.progress is not None:
        out["progress"] = cache.progress
    return out
