"""The prompt's numbers as a feature row, for learners that read the text without the images.

Used by the blind reference policy (:class:`vla.reference.BlindLearner`) and by the
predictability study (:mod:`vla.analysis.predictability`). The features are rounded as the
prompt writes them (history, speed and acceleration to 0.1, yaw rate to 0.01); images and
everything they show are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla.meta_action import LATERAL, LONGITUDINAL
from vla.model.prompting import quoted_history

PROMPT_COLUMNS = ["history", "ego_speed", "ego_accel", "ego_yaw_rate", "command",
                  "decision_lon", "decision_lat"]


def prompt_features(ds, commands: Sequence[str], with_decisions: bool) -> np.ndarray:
    """One row per sample, rounded as the prompt writes it: speed, acceleration, yaw rate, the
    quoted history rows (x, y, speed) and the command one-hot; with ``with_decisions`` the
    labelled meta-action one-hot too."""
    rows = []
    if hasattr(ds, "select_columns"):  # a datasets split; else an iterable of sample dicts
        ds = ds.select_columns([c for c in PROMPT_COLUMNS if c in ds.column_names])
    for s in ds:
        hist = np.round(quoted_history(s["history"])[:, [0, 1, 3]], 1)
        row = [round(s["ego_speed"], 1), round(s["ego_accel"] or 0.0, 1),
               round(s["ego_yaw_rate"] or 0.0, 2), *hist.ravel()]
        row += [s["command"] == c for c in commands]
        if with_decisions:
            row += [s["decision_lon"] == d for d in LONGITUDINAL]
            row += [s["decision_lat"] == d for d in LATERAL]
        rows.append(row)
    return np.asarray(rows, dtype=np.float64)
