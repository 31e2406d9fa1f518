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
    ground = grounding(decision.reasoning, sample)
    checks = coherence(decision.reasoning, meta)
    return {
        "accuracy_lon": float(correct_lon), "accuracy_lat": float(correct_lat),
        "accuracy": float(correct_lon and correct_lat),
        "consistency_lon": float(consistent_lon), "consistency_lat": float(consistent_lat),
        "consistency": float(consistent_lon and consistent_lat),
        "correct_and_consistent": float(correct_lon and correct_lat and consistent_lon
                                        and consistent_lat),
        "grounding": ground.value, "grounding_precision": ground.precision,
        "grounding_recall": ground.recall,
        "states_meta_action": float(checks["states_meta_action"]),
        "situation_admits": float(checks["situation_admits"]),
        "derived": f"{derived.longitudinal}, {derived.lateral}",
    }


def trajectory_metrics(pred: np.ndarray, sample: dict, hz: float = 10.0) -> dict:
    """Displacement errors in both conventions, and the metric cache's verdicts."""
    gt = np.asarray(sample["future"], float)
    out = horizon_errors(pred, gt, hz, HORIZONS_S)
    cache = score_against_cache(pred, gt, sample["metric_cache"], hz)
    out.update(collision=float(cache.collision), off_road=float(cache.off_road))
    if cache.progress is not None:
        out["progress"] = cache.progress
    return out
