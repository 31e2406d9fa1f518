"""Reference policies: decisions made without a model, to print beside the model's.

Each blind row is a function ``sample -> Decision`` (reasoning, meta-action, trajectory in
metres), so that every metric and reward applies to it unchanged, and behind the
:class:`vla.policy.Policy` protocol a :class:`DecisionPolicy` (:func:`blind_policies`); the
plans without a decision (the kinematic baselines, the expert's future) are
:class:`TrajectoryPolicy` objects (:func:`trajectory_baselines`, :func:`kinematic_policies`):

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
from functools import partial

import numpy as np

from vla.data.labels import LAT_PHRASE, LON_PHRASE
from vla.meta_action import LATERAL, LONGITUDINAL, MetaAction, derive_meta_action
from vla.model.parser import Decision
from vla.policy import PolicyOutput, check_request
from vla.trajectory.baselines import BASELINES, constant_velocity, damped_acceleration
from vla.trajectory.baselines import sample_prior as prior_trajectory
from vla.trajectory.baselines import sample_spec as _spec
from vla.trajectory.types import ego_state_of

FIXED_SENTENCE = ("The lead car ahead is braking and a stopped vehicle is in our lane, a car on "
                  "the left and on the right is cutting in and slower, the left lane has room "
                  "and the right lane has room, traffic has right of way at the merge, the "
                  "junction and the roundabout, the lane is clear, the route turns left and "
                  "the route turns right, between frame 1 and frame 2")
MIRROR_MIN_OFFSET_M = 1.0


def decision_clause(meta: MetaAction) -> str:
    return f"so {LON_PHRASE[meta.longitudinal]} and {LAT_PHRASE[meta.lateral]}"




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

        from vla.model.prompt_features import prompt_features

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
        from vla.model.prompt_features import prompt_features

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


class DecisionPolicy:
    """A :class:`vla.policy.Policy` of a function ``sample -> Decision`` (a blind row): the
    same decision for every one of the ``n`` outputs, whatever the temperature."""

    thread_safe = True

    def __init__(self, name: str, decide_one: Callable[[dict], Decision]):
        self.name, self.decide_one = name, decide_one

    def decide(self, samples, n: int = 1, temperature: float = 0.0) -> list[PolicyOutput]:
        check_request(samples, n, 1.0 if n > 1 else temperature)
        return [PolicyOutput(decision=self.decide_one(s)) for s in samples for _ in range(n)]


class TrajectoryPolicy:
    """A :class:`vla.policy.Policy` that writes only a plan, ``sample -> (T, 3)`` in the ego
    frame (a kinematic baseline, or the expert's future); its outputs have no text and no
    decision, so the meta-action readers take the one derived from the plan."""

    thread_safe = True

    def __init__(self, name: str, plan: Callable[[dict], np.ndarray]):
        self.name, self.plan = name, plan

    @property
    def runs_in_workers(self) -> bool:
        """Its plan pickles (a module-level function, or a partial of one), so it can run in
        a worker process."""
        import pickle

        try:
            pickle.dumps(self.plan)
        except (pickle.PicklingError, AttributeError, TypeError):
            return False
        return True

    def decide(self, samples, n: int = 1, temperature: float = 0.0) -> list[PolicyOutput]:
        check_request(samples, n, 1.0 if n > 1 else temperature)
        return [PolicyOutput(trajectory=np.asarray(self.plan(s), float))
                for s in samples for _ in range(n)]


def expert_plan(sample: dict) -> np.ndarray:
    """The expert's future: ``expert_future`` where the sample carries one (closed loop: the
    driver run ahead from the current state), else the logged ``future``."""
    future = sample.get("expert_future")
    return np.asarray(sample["future"] if future is None else future, float)


def kinematic_policies() -> dict[str, TrajectoryPolicy]:
    """The closed-loop planners without a model: ``constant-velocity`` and ``damped-prior``
    (the ``damped-acceleration`` baseline of :func:`trajectory_baselines`: the trajectory
    prior, every trajectory token at entry 0)."""
    return {"constant-velocity": TrajectoryPolicy("constant-velocity", constant_velocity_plan),
            "damped-prior": TrajectoryPolicy("damped-prior",
                                             partial(_baseline_plan, damped_acceleration))}


def blind_policies(train=None) -> dict[str, DecisionPolicy]:
    """:func:`reference_policies` as :class:`vla.policy.Policy` objects."""
    return {name: DecisionPolicy(name, fn) for name, fn in reference_policies(train).items()}


def _baseline_plan(planner: Callable, sample: dict) -> np.ndarray:
    return planner(ego_state_of(sample), _spec(sample))


def constant_velocity_plan(sample: dict) -> np.ndarray:
    """Straight on at the current speed, over the sample's horizon."""
    return _baseline_plan(constant_velocity, sample)


def trajectory_baselines(expert: bool = True) -> dict[str, TrajectoryPolicy]:
    """The kinematic baselines of :data:`vla.trajectory.baselines.BASELINES` under their names
    there (``constant-velocity``, ``constant-acceleration``, ``damped-acceleration``) and, with
    ``expert``, the expert's future: the trajectory rows of the open-loop and validation
    tables."""
    policies = {name: TrajectoryPolicy(name, partial(_baseline_plan, planner))
                for name, planner in BASELINES.items()}
    if expert:
        policies["expert"] = TrajectoryPolicy("expert", expert_plan)
    return policies
