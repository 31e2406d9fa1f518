"""Rewards that tie the reasoning to the action: plain functions over a sample and a completion.

Each reward returns a :class:`Reward`: its value and the components it was computed from.
:func:`score_completion` parses the completion once and :func:`score_decision` computes them
all from the per-sample metrics of :mod:`vla.metrics`:

- ``format``: 1 for a completion that parses under the output grammar;
- ``consistency``: rewarded together with correctness, per axis: ½ for each axis whose
  written meta-action both equals the label and agrees with the meta-action the deriver
  reads from the trajectory that follows. A policy that agrees with itself without being
  right earns nothing here (the blind rows of ``vla rewards audit``);
- ``trajectory``: ``1 / (1 + ADE@3 s / ade_scale_m)`` (continuous: no cliff, never flat),
  plus ``comfort_bonus`` within the comfort bounds, ``progress_weight`` × progress along the
  expert's reference path cut to the horizon, minus ``collision_penalty`` for hitting an
  agent's logged future footprint and ``off_road_penalty`` for leaving the lanes (the metric
  cache decides these, :mod:`vla.scoring`);
- ``grounding``: F0.5 of the observable facts the reasoning claims against the label's
  (:func:`vla.reasoning.grounding`): naming every fact scores low;
- ``coherence``: ½ when the decision stated in words is the written meta-action, ½ × the
  grounding precision when the stated situation admits it (:mod:`vla.reasoning`): admitting
  the action counts only for a situation that is really there.

The total is the weighted sum (:class:`RewardWeights`). An unparsable completion totals
:func:`unparsable_total`, strictly below the worst total a parsable one can reach, so a
parse failure never outranks a bad drive. With a ``judge``
(:class:`vla.rl.judge.JudgeConfig`), a model behind any OpenAI-compatible endpoint also scores
the reasoning (reward ``judge``); off by default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from vla.metrics import decision_metrics, trajectory_metrics
from vla.model.parser import Decision, ParseError, parse_output
from vla.trajectory.metrics import is_comfortable
from vla.trajectory.types import ego_state_of


@dataclass(frozen=True)
class RewardWeights:
    format: float = 0.5
    consistency: float = 1.0
    trajectory: float = 1.0
    grounding: float = 0.5
    coherence: float = 0.5
    judge: float = 0.5               # used only when a judge endpoint is given
    ade_scale_m: float = 1.5
    comfort_bonus: float = 0.1
    progress_weight: float = 0.2
    collision_penalty: float = 1.0
    off_road_penalty: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"RewardWeights.{f.name} must be a finite number >= 0, "
                                 f"got {value}")
        if self.ade_scale_m <= 0:
            raise ValueError("RewardWeights.ade_scale_m must be > 0")


@dataclass
class Reward:
    value: float
    components: dict = field(default_factory=dict)


@dataclass
class RewardResult:
    total: float
    rewards: dict[str, Reward]
    decision: Decision | None
    error: str | None

    def to_json(self) -> dict:
        return {"total": round(self.total, 4), "error": self.error,
                **{name: {"value": round(r.value, 4), **r.components}
                   for name, r in self.rewards.items()}}


def unparsable_total(weights: RewardWeights) -> float:
    """The total of an unparsable completion: the worst parsable total (format only, every
    other reward at its floor, colliding and off the road) minus the format weight."""
    worst = weights.format - weights.trajectory * (weights.collision_penalty
                                                   + weights.off_road_penalty)
    return worst - weights.format


def consistency_reward(metrics: dict) -> Reward:
    lon = metrics["consistency_lon"] * metrics["accuracy_lon"]
    lat = metrics["consistency_lat"] * metrics["accuracy_lat"]
    return Reward(0.5 * (lon + lat), {
        "longitudinal": bool(metrics["consistency_lon"]),
        "lateral": bool(metrics["consistency_lat"]),
        "correct_lon": bool(metrics["accuracy_lon"]),
        "correct_lat": bool(metrics["accuracy_lat"]), "derived": metrics["derived"]})


def trajectory_reward(decision: Decision, sample: dict, weights: RewardWeights,
                      hz: float = 10.0) -> Reward:
    pred = decision.trajectory
    m = trajectory_metrics(pred, sample, hz)
    ade_term = 1.0 / (1.0 + m["l2_avg_3s"] / weights.ade_scale_m)
    comfortable = is_comfortable(pred, ego_state_of(sample), hz)
    progress = min(m.get("progress", 0.0), 1.0)
    # None on a converted log without agent boxes or a map: not available, no penalty
    collision, off_road = (None if m[k] is None else bool(m[k])
                           for k in ("collision", "off_road"))
    value = (ade_term + weights.comfort_bonus * comfortable
             + weights.progress_weight * progress
             - weights.collision_penalty * bool(collision)
             - weights.off_road_penalty * bool(off_road))
    return Reward(value, {"ade_3s_m": round(m["l2_avg_3s"], 3),
                          "ade_term": round(ade_term, 4), "comfortable": comfortable,
                          "collision": collision, "off_road": off_road,
                          "progress": m.get("progress")})


def grounding_reward(metrics: dict) -> Reward:
    if metrics["grounding"] is None:  # a converted log: no ground truth of the facts
        return Reward(0.0, {"available": False})
    return Reward(metrics["grounding"], {
        "precision": round(metrics["grounding_precision"], 4),
        "recall": round(metrics["grounding_recall"], 4)})


def coherence_reward(metrics: dict) -> Reward:
    """½ for words that state the written meta-action; ½ × grounding precision for a stated
    situation that admits it (a situation that is not there earns nothing for admitting)."""
    checks = {"states_meta_action": bool(metrics["states_meta_action"]),
              "situation_admits": bool(metrics["situation_admits"])}
    precision = metrics["grounding_precision"] or 0.0  # None on logs: nothing to admit
    value = 0.5 * checks["states_meta_action"] + 0.5 * checks["situation_admits"] * precision
    return Reward(value, checks)


DEFAULT_WEIGHTS = RewardWeights()


def score_decision(decision: Decision, sample: dict, weights: RewardWeights = DEFAULT_WEIGHTS,
                   hz: float = 10.0, judge=None) -> RewardResult:
    """Every reward of a parsed decision whose trajectory is decoded (metres, ego frame)."""
    metrics = decision_metrics(decision, sample, hz)
    rewards = {"format": Reward(1.0),
               "consistency": consistency_reward(metrics),
               "trajectory": trajectory_reward(decision, sample, weights, hz),
               "grounding": grounding_reward(metrics),
               "coherence": coherence_reward(metrics)}
    if judge is not None:
        from vla.rl.judge import judge_reward

        rewards["judge"] = judge_reward(judge, decision, sample)
    total = sum(getattr(weights, name) * r.value for name, r in rewards.items())
    return RewardResult(total, rewards, decision, None)


def score_completion(text: str, sample: dict, codec,
                     weights: RewardWeights = DEFAULT_WEIGHTS, judge=None) -> RewardResult:
    """Parse ``text`` (the model's output) and compute every reward for ``sample``."""
    try:
        decision = parse_output(text, codec.num_tokens, codec, ego_state_of(sample))
    except ParseError as exc:
        names = ("consistency", "trajectory", "grounding", "coherence") + (
            ("judge",) if judge is not None else ())
        zero = {name: Reward(0.0) for name in names}
        return RewardResult(unparsable_total(weights),
                            {"format": Reward(0.0, {"kind": exc.kind}), **zero}, None,
                            str(exc))
    return score_decision(decision, sample, weights, codec.spec.hz, judge)
