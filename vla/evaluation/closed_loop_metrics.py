"""Closed-loop metrics of an episode, and their summary over episodes.

Per episode (from :mod:`vla.evaluation.driving_metrics`): collision, off-road, TTC
violations, comfort, decision accuracy against the expert's choice (longitudinal, lateral),
the parse rate, and, given the expert's path on the same seed, progress and the PDMS-like
score ``pdms_like``. Per planner, overall
and per event: the means, and for collision rate, off-road rate, PDMS-like score and
decision accuracy a 95 % percentile-bootstrap interval over episodes (1000 resamples, seeded
by the evaluation seed): ``<key>_ci95 = [lo, hi]``. When ``damped-prior`` ran, every other
planner also gets its paired difference to it (same seeds): ``vs_damped_prior``.
"""

from __future__ import annotations

import numpy as np

from vla.evaluation import driving_metrics as dm
from vla.evaluation.closed_loop_episode import Episode
from vla.sim.world import DT

PAIRED_REFERENCE = "damped-prior"
CI_RESAMPLES = 1000
CI_CONFIDENCE = 0.95
CI_KEYS = {"collision_rate": "collision", "off_road_rate": "off_road", "pdms_like": "pdms_like",
           "decision_accuracy_lon": "decision_accuracy_lon",
           "decision_accuracy_lat": "decision_accuracy_lat"}


def _rate(values: list) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def driven_metrics(episode: Episode) -> dict:
    """The metrics that need only the episode itself (all but progress and the score)."""
    log = episode.log
    ego = episode.ego_states()
    others = [a for a in log.ids if a != log.ego_id]
    agents = log.state[others, episode.start_step:episode.end_step + 1]
    ttc = dm.time_to_collision(ego, log.size[log.ego_id], agents, log.size[others])
    violations = int((ttc < dm.TTC_THRESHOLD_S).sum())
    comfort = dm.comfort(ego, DT)
    parsed = [d.output.decision is not None for d in episode.decisions
              if d.output.text is not None]
    correct = [d.correct for d in episode.decisions if d.correct is not None]
    return {
        "collision": int(episode.collision), "off_road": int(episode.off_road),
        "ttc_violations": violations,
        "min_ttc_s": None if not np.isfinite(ttc.min()) else round(float(ttc.min()), 3),
        "comfort": int(comfort["comfortable"]), "comfort_peaks": comfort,
        "decision_accuracy_lon": _rate([c[0] for c in correct]),
        "decision_accuracy_lat": _rate([c[1] for c in correct]),
        "decisions": len(episode.decisions),
        "parse_rate": _rate(parsed),
        "seconds_simulated": round((episode.end_step - episode.start_step) * DT, 1),
    }


def with_progress(metrics: dict, ego_xy: np.ndarray, expert_xy: np.ndarray) -> dict:
    """``metrics`` (from :func:`driven_metrics`) with progress against the expert's path and
    the PDMS-like score."""
    ep = dm.progress(ego_xy, expert_xy)
    score = round(dm.pdms_like(not metrics["collision"], not metrics["off_road"],
                               metrics["ttc_violations"] == 0, ep, bool(metrics["comfort"])), 4)
    return {**metrics, "progress": round(ep, 4), "pdms_like": score}


def _ci(values: list, seed: int) -> list[float] | None:
    interval = dm.bootstrap_ci(values, CI_RESAMPLES, CI_CONFIDENCE, seed)
    return None if interval is None else [round(v, 4) for v in interval]


def summarize(rows: list[dict], seed: int = 0) -> dict:
    """Means over episodes, and bootstrap intervals (``<key>_ci95``) for :data:`CI_KEYS`."""
    out = {"episodes": len(rows)}
    for key, column in CI_KEYS.items():
        values = [r.get(column) for r in rows]
        out[key], out[f"{key}_ci95"] = _rate(values), _ci(values, seed)
    out["progress"] = _rate([r.get("progress") for r in rows])
    out["ttc_violation_rate"] = _rate([r["ttc_violations"] > 0 for r in rows])
    out["comfort_rate"] = _rate([r.get("comfort") for r in rows])
    out["parse_rate"] = _rate([r.get("parse_rate") for r in rows])
    return out


def paired_difference(rows: list[dict], reference: list[dict], seed: int = 0) -> dict:
    """Mean per-episode difference (planner minus reference, same episodes) of the
    PDMS-like score and the collision rate, with bootstrap intervals over episodes."""
    if [(r["scenario"], r["seed"]) for r in rows] != \
            [(r["scenario"], r["seed"]) for r in reference]:
        raise ValueError("paired rows must be of the same episodes, in the same order")
    out = {}
    for key, column in (("pdms_like_diff", "pdms_like"), ("collision_rate_diff", "collision")):
        diffs = [a[column] - b[column] for a, b in zip(rows, reference, strict=True)]
        out[key], out[f"{key}_ci95"] = _rate(diffs), _ci(diffs, seed)
    return out


def summarize_planners(per_episode: dict[str, list[dict]], seed: int = 0) -> dict:
    """Per planner: the overall summary, ``per_event`` (scenario event → summary) and, when
    the damped prior ran, ``vs_damped_prior`` (:func:`paired_difference`)."""
    out = {}
    reference = per_episode.get(PAIRED_REFERENCE)
    for name, rows in per_episode.items():
        events = list(dict.fromkeys(r["scenario"] for r in rows))
        summary = summarize(rows, seed)
        summary["per_event"] = {e: summarize([r for r in rows if r["scenario"] == e], seed)
                                for e in events}
        if reference is not None and name != PAIRED_REFERENCE and rows:
            summary["vs_damped_prior"] = paired_difference(rows, reference, seed)
        out[name] = summary
    return out
