"""Label statistics and label / trajectory agreement over a data set."""

from __future__ import annotations

from collections import Counter

import numpy as np

from vla.meta_action import MetaAction, derive_meta_action, is_consistent


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
