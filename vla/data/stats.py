"""Label statistics, label / trajectory agreement, and how often the prompt's own numbers
give the decision away, over a data set."""

from __future__ import annotations

from collections import Counter

import numpy as np

from vla.data.subsets import subset_name
from vla.meta_action import MetaAction, derive_meta_action, is_consistent
from vla.metrics import is_log
from vla.trajectory.baselines import sample_prior


def prior_longitudinal(row: dict) -> str:
    """The longitudinal class of the trajectory prior (damped acceleration from the prompt's
    speed and acceleration): what the blind-prior row writes, a decision read off the ego's
    own motion."""
    return derive_meta_action(sample_prior(row), float(row["ego_speed"])).longitudinal


def prior_agreement(split) -> dict:
    """How often the prior's longitudinal class equals the label, and how often it is
    compatible with it (:func:`vla.meta_action.is_consistent`: e.g. ``follow`` and
    ``keep_speed``), over all samples, event samples and free driving
    (:func:`vla.sim.recipes.subset_of`); samples of converted driving logs (``source`` other
    than ``sim``) form the group ``logs``. High values on event samples mean the ego's
    kinematics in the prompt already show the decision: a model can score without looking."""
    cols = split.select_columns([c for c in ("decision_lon", "future", "ego_speed", "ego_accel",
                                             "ego_yaw_rate", "scenario", "source")
                                 if c in split.column_names])
    counts: dict[str, list[int]] = {"all": [0, 0, 0]}  # group -> n, equal, compatible
    simulated = False
    for row in cols:
        simulated = simulated or not is_log(row)
        prior = prior_longitudinal(row)
        label = MetaAction(row["decision_lon"], "keep_lane")
        equal = prior == row["decision_lon"]
        compatible = is_consistent(label, MetaAction(prior, "keep_lane"))[0]
        for group in ("all", subset_name(row)):
            counts.setdefault(group, [0, 0, 0])
            counts[group][0] += 1
            counts[group][1] += equal
            counts[group][2] += compatible
    if simulated:  # a simulator build reports both subsets, even an empty one
        for group in ("events", "free"):
            counts.setdefault(group, [0, 0, 0])
    return {group: {"samples": n, "prior_equal_lon": round(eq / max(n, 1), 4),
                    "prior_compatible_lon": round(co / max(n, 1), 4)}
            for group, (n, eq, co) in counts.items()}


def label_stats(split) -> dict:
    """Decision distribution and agreement with the deriver on the ground-truth futures."""
    cols = split.select_columns(["decision_lon", "decision_lat", "future", "ego_speed",
                                 "scenario"])
    pairs: Counter = Counter()
    scenarios: Counter = Counter()
    lon_ok = lat_ok = both_ok = 0
    n = 0
    for row in cols:
        decision = MetaAction(row["decision_lon"], row["decision_lat"])
        derived = derive_meta_action(np.asarray(row["future"]), row["ego_speed"])
        lo, la = is_consistent(decision, derived)
        lon_ok += lo
        lat_ok += la
        both_ok += lo and la
        pairs[f"{decision.longitudinal}/{decision.lateral}"] += 1
        scenarios[row["scenario"]] += 1
        n += 1
    return {"samples": n, "pairs": pairs, "scenarios": scenarios,
            "agreement_lon": lon_ok / max(n, 1), "agreement_lat": lat_ok / max(n, 1),
            "agreement": both_ok / max(n, 1)}
