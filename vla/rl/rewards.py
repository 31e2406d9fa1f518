"""Rewards that tie the reasoning to the action: plain functions over a sample and a completion.

Each reward returns a :class:`Reward`: its value and the components it was computed from.
:func:`score_completion` parses the completion once and computes them all:

- ``format``: 1 if the completion parses under the output grammar, else 0; an unparsable
  completion gets 0 from every other reward (nothing to judge);
- ``consistency``: the meta-action written in the output against the one the deriver reads
  from the decoded trajectory that follows — 1 when both axes agree, else 0 (per-axis
  agreement in the components);
- ``trajectory``: ``1 - ADE / ade_gate_m`` (−1 beyond the gate), plus ``comfort_bonus`` when
  within the comfort bounds, ``progress_weight`` × progress along the route against the
  ground truth, minus ``collision_penalty`` for hitting an agent's logged future footprint and
  ``off_road_penalty`` for leaving the lanes (the metric cache decides both);
- ``grounding``: the share of the labelled critical components the reasoning names (an agent
  by its id, a priority rule by its place and "right of way", a clear lane, a route turn);
- ``reasoning``: a rubric — the reasoning states the decision it acts on, names a cause,
  and cites evidence across the two frames — each worth a third.

The total is the weighted sum (:class:`RewardWeights`). With a ``judge``
(:class:`vla.rl.judge.JudgeConfig`), a model behind any OpenAI-compatible endpoint also scores
the reasoning (reward ``judge``); off by default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

import numpy as np

from vla.meta_action import MetaAction, derive_meta_action, is_consistent
from vla.model.parser import Decision, ParseError, parse_output
from vla.scoring import score_against_cache
from vla.trajectory.metrics import displacement_errors, is_comfortable
from vla.trajectory.types import ego_state_of

# how the label sentences phrase each decision (vla/data/labels.py), and close synonyms
DECISION_WORDS = {
    "stop": ("stop",), "yield": ("yield", "give way", "right of way"),
    "follow": ("follow",), "decelerate": ("decelerate", "slow", "brake"),
    "keep_speed": ("keep speed", "keep our speed", "hold"), "accelerate": ("accelerate",
                                                                          "speed up"),
    "keep_lane": ("keep the lane", "stay in"), "lane_change_left": ("lane to the left",
                                                                    "left lane"),
    "lane_change_right": ("lane to the right", "right lane"), "turn_left": ("turn left",
                                                                            "turns left"),
    "turn_right": ("turn right", "turns right"),
}
PLACE_WORDS = {"merge": "merge", "junction": "junction", "roundabout": "roundabout"}


@dataclass(frozen=True)
class RewardWeights:
    format: float = 0.5
    consistency: float = 1.0
    trajectory: float = 1.0
    grounding: float = 0.5
    reasoning: float = 0.25
    judge: float = 0.5               # used only when a judge endpoint is given
    ade_gate_m: float = 3.0
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
        if self.ade_gate_m <= 0:
            raise ValueError("RewardWeights.ade_gate_m must be > 0")


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


def consistency_reward(decision: Decision, sample: dict, hz: float = 10.0) -> Reward:
    derived = derive_meta_action(decision.trajectory, float(sample["ego_speed"]), hz)
    lon_ok, lat_ok = is_consistent(decision.meta_action, derived)
    return Reward(float(lon_ok and lat_ok), {
        "longitudinal": bool(lon_ok), "lateral": bool(lat_ok),
        "derived": f"{derived.longitudinal}, {derived.lateral}"})


def trajectory_reward(decision: Decision, sample: dict, weights: RewardWeights,
                      hz: float = 10.0) -> Reward:
    pred = decision.trajectory
    gt = np.asarray(sample["future"], float)
    ade = float(displacement_errors(pred, gt)["ade"])
    ade_term = -1.0 if ade > weights.ade_gate_m else 1.0 - ade / weights.ade_gate_m
    comfortable = is_comfortable(pred, ego_state_of(sample), hz)
    cache = score_against_cache(pred, gt, sample["metric_cache"], hz)
    progress = 0.0 if cache.progress is None else min(cache.progress, 1.0)
    value = (ade_term + weights.comfort_bonus * comfortable
             + weights.progress_weight * progress
             - weights.collision_penalty * cache.collision
             - weights.off_road_penalty * cache.off_road)
    return Reward(value, {"ade_m": round(ade, 3), "ade_term": round(ade_term, 4),
                          "comfortable": comfortable, "collision": cache.collision,
                          "collision_agent": cache.collision_agent,
                          "off_road": cache.off_road, "progress": cache.progress})


def _names(reasoning: str, component: dict) -> bool:
    text = reasoning.lower()
    kind = component.get("kind")
    if kind == "agent":
        return re.search(rf"\bid {int(component['id'])}\b", text) is not None
    if kind == "rule":
        place = PLACE_WORDS.get(component["rule"].split("_")[0], "")
        return place in text and ("right of way" in text or "priority" in text)
    if kind == "lane":
        return "clear" in text
    if kind == "route":
        return "route" in text or "turn" in text
    return False


def grounding_reward(decision: Decision, sample: dict) -> Reward:
    import json

    critical = sample["critical"]
    critical = json.loads(critical) if isinstance(critical, str) else critical
    if not critical:
        return Reward(1.0, {"named": 0, "critical": 0})
    named = [_names(decision.reasoning, c) for c in critical]
    return Reward(sum(named) / len(named), {"named": int(sum(named)),
                                            "critical": len(critical)})


def reasoning_reward(decision: Decision) -> Reward:
    text = decision.reasoning.lower()
    meta: MetaAction = decision.meta_action
    states = all(any(w in text for w in DECISION_WORDS[d])
                 for d in (meta.longitudinal, meta.lateral))
    cause = bool(re.search(r"\bid \d+\b", text)) or any(
        w in text for w in ("right of way", "clear", "target", "route", "priority"))
    evidence = ("frame 1" in text and "frame 2" in text) or len(re.findall(r"\d+", text)) >= 2
    checks = {"states_decision": states, "names_cause": cause, "cites_evidence": evidence}
    return Reward(sum(checks.values()) / 3.0, checks)


DEFAULT_WEIGHTS = RewardWeights()


def score_completion(text: str, sample: dict, codec,
                     weights: RewardWeights = DEFAULT_WEIGHTS, judge=None) -> RewardResult:
    """Parse ``text`` (the model's output) and compute every reward for ``sample``."""
    hz = codec.spec.hz
    try:
        decision = parse_output(text, codec.num_tokens, codec, ego_state_of(sample))
    except ParseError as exc:
        names = ("consistency", "trajectory", "grounding", "reasoning") + (
            ("judge",) if judge is not None else ())
        zero = {name: Reward(0.0) for name in names}
        return RewardResult(0.0, {"format": Reward(0.0, {"kind": exc.kind}), **zero}, None,
                            str(exc))
    rewards = {"format": Reward(1.0),
               "consistency": consistency_reward(decision, sample, hz),
               "trajectory": trajectory_reward(decision, sample, weights, hz),
               "grounding": grounding_reward(decision, sample),
               "reasoning": reasoning_reward(decision)}
    if judge is not None:
        from vla.rl.judge import judge_reward

        rewards["judge"] = judge_reward(judge, decision, sample)
    total = sum(getattr(weights, name) * r.value for name, r in rewards.items())
    return RewardResult(total, rewards, decision, None)
