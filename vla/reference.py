"""Reference policies: decisions made without a model, to print beside the model's.

Each is a function ``sample -> Decision`` (reasoning, meta-action, trajectory in metres), so
that every metric and reward applies to it unchanged:

- ``blind-constant``: ``keep_speed, keep_lane`` over the trajectory prior (the damped-
  acceleration baseline, what the model writes with every trajectory token at entry 0), with
  a sentence that states that decision over a clear lane;
- ``blind-prior``: the meta-action the prior trajectory implies (a function of the prompt's
  speed and acceleration alone) over the prior, stated the same way;
- ``blind-learned`` (:class:`BlindLearner`): gradient-boosted trees fitted on the train
  split's prompt numbers and command (no images) predict the meta-action (one classifier
  per axis) and the trajectory (offsets from the prior at 1 s knots); what the text alone
  gives a learner;
- for the reward audit: ``label`` (the ground-truth completion), ``fixed-sentence`` (one
  scene-independent sentence naming every fact, the label's meta-action, the prior) and
  ``wrong-direction`` (the label's reasoning and meta-action over the ground truth mirrored
  left-right, or driven backwards where it has no lateral motion).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vla.data.labels import LAT_PHRASE, LON_PHRASE
from vla.meta_action import LATERAL, LONGITUDINAL, MetaAction, derive_meta_action
from vla.model.parser import Decision
from vla.trajectory.baselines import damped_acceleration
from vla.trajectory.types import TrajectorySpec, ego_state_of

FIXED_SENTENCE = ("The lead car ahead is braking and a stopped vehicle is in our lane, a car on "
                  "the left and on the right is cutting in and slower, the left lane has room "
                  "and the right lane has room, traffic has right of way at the merge, the "
                  "junction and the roundabout, the lane is clear, the route turns left and "
                  "the route turns right, between frame 1 and frame 2")
MIRROR_MIN_OFFSET_M = 1.0


def decision_clause(meta: MetaAction) -> str:
    return f"so {LON_PHRASE[meta.longitudinal]} and {LAT_PHRASE[meta.lateral]}"


def _spec(sample: dict) -> TrajectorySpec:
    return TrajectorySpec(hz=10.0, horizon_s=len(sample["future"]) / 10.0)


def prior_trajectory(sample: dict) -> np.ndarray:
    return damped_acceleration(ego_state_of(sample), _spec(sample))


def _blind(sample: dict, meta: MetaAction, trajectory: np.ndarray) -> Decision:
    reasoning = (f"The lane ahead is clear and we drive {float(sample['ego_speed']):.0f} m/s, "
                 f"{decision_clause(meta)}.")
    return Decision(reasoning, meta, [], trajectory)


def blind_constant(sample: dict) -> Decision:
    return _blind(sample, MetaAction("keep_speed", "keep_lane"), prior_trajectory(sample))


def blind_prior(sample: dict) -> Decision:
    prior = prior_trajectory(sample)
    return _blind(sample, derive_meta_action(prior, float(sample["ego_speed"])), prior)


def label_meta(sample: dict) -> MetaAction:
    return MetaAction(sample["decision_lon"], sample["decision_lat"])


def label_decision(sample: dict) -> Decision:
    return Decision(sample["reasoning"], label_meta(sample), [],
                    np.asarray(sample["future"], float))


def fixed_sentence(sample: dict) -> Decision:
    meta = label_meta(sample)
    return Decision(f"{FIXED_SENTENCE}, {decision_clause(meta)}.", meta, [],
                    prior_trajectory(sample))


def wrong_direction(sample: dict) -> Decision:
    future = np.asarray(sample["future"], float).copy()
    if np.abs(future[:, 1]).max() >= MIRROR_MIN_OFFSET_M:
        future[:, 1] *= -1.0
        future[:, 2] *= -1.0
    else:
        future[:, 0] *= -1.0
    return Decision(sample["reasoning"], label_meta(sample), [], future)


def _with_headings(xy: np.ndarray) -> np.ndarray:
    """(T, 2) positions → (T, 3) with the heading of each step's motion (0 when still)."""
    d = np.diff(np.vstack([[0.0, 0.0], xy]), axis=0)
    yaw = np.arctan2(d[:, 1], d[:, 0])
    yaw[np.linalg.norm(d, axis=1) < 1e-3] = 0.0
    return np.column_stack([xy, np.unwrap(yaw)])


class BlindLearner:
    """Tabular learners on the prompt's numbers (see the module docstring): fitted once on a
    train split, then a reference policy like the others."""

    def __init__(self, train, max_iter: int = 100, seed: int = 0):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        from vla.trajectory.predictability import prompt_features

        self.commands = sorted(set(train["command"]))
        x = prompt_features(train, self.commands, with_decisions=False)
        rows = list(train.select_columns(["future", "ego_speed", "ego_accel", "ego_yaw_rate",
                                          "history", "decision_lon", "decision_lat"]))
        self.horizon = len(rows[0]["future"])
        self.knots = np.arange(10, self.horizon + 1, 10)  # every 1 s at 10 Hz
        offsets = np.stack([np.asarray(r["future"], float)[self.knots - 1, :2]
                            - prior_trajectory(r)[self.knots - 1, :2] for r in rows])
        self.regressors = [HistGradientBoostingRegressor(max_iter=max_iter, random_state=seed)
                           .fit(x, offsets[:, k, axis])
                           for k in range(len(self.knots)) for axis in range(2)]

        def classifier(labels, classes):
            if len(set(labels)) == 1:
                return labels[0]
            clf = HistGradientBoostingClassifier(max_iter=max_iter, random_state=seed)
            return clf.fit(x, [classes.index(v) for v in labels])

        self.lon = classifier([r["decision_lon"] for r in rows], list(LONGITUDINAL))
        self.lat = classifier([r["decision_lat"] for r in rows], list(LATERAL))

    def _predict_class(self, model, x, classes) -> str:
        return model if isinstance(model, str) else classes[int(model.predict(x)[0])]

    def __call__(self, sample: dict) -> Decision:
        from vla.trajectory.predictability import prompt_features

        row = {k: sample[k] for k in ("history", "ego_speed", "ego_accel", "ego_yaw_rate",
                                      "command")}
        x = prompt_features([row], self.commands, with_decisions=False)
        knots = np.array([r.predict(x)[0] for r in self.regressors]).reshape(-1, 2)
        t = np.arange(1, self.horizon + 1)
        grid = np.concatenate([[0], self.knots])
        offset = np.column_stack([np.interp(t, grid, np.concatenate([[0.0], knots[:, a]]))
                                  for a in range(2)])
        trajectory = _with_headings(prior_trajectory(sample)[:, :2] + offset)
        meta = MetaAction(self._predict_class(self.lon, x, list(LONGITUDINAL)),
                          self._predict_class(self.lat, x, list(LATERAL)))
        return _blind(sample, meta, trajectory)


BLIND_POLICIES: dict[str, Callable[[dict], Decision]] = {
    "blind-constant": blind_constant, "blind-prior": blind_prior}
AUDIT_POLICIES: dict[str, Callable[[dict], Decision]] = {
    "label": label_decision, "blind-constant": blind_constant, "blind-prior": blind_prior,
    "fixed-sentence": fixed_sentence, "wrong-direction": wrong_direction}


def reference_policies(train=None) -> dict[str, Callable[[dict], Decision]]:
    """The blind rows every decision table prints: ``blind-constant``, ``blind-prior`` and,
    given a train split, ``blind-learned`` fitted on it."""
    policies = dict(BLIND_POLICIES)
    if train is not None and len(train) > 0:
        policies["blind-learned"] = BlindLearner(train)
    return policies
