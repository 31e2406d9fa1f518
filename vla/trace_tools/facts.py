"""What every ``vla traces`` command shows about one record, the same way for every kind.

:func:`facts_of` reads a record of any kind (see :mod:`vla.traces`) into :class:`Facts`: the
written meta-action beside the one derived from the trajectory, the verdict (consistent,
inconsistent, unparsable), ADE, reward components, the expert's choice in closed loop (and
whether the decision agrees with it), closed-loop episode metrics. Every decision kind,
``grpo`` included, carries its parsed ``decision`` and ``derived_meta_action``; only a
``grpo`` record written before they did (no ``decision`` field at all) has its text parsed
here, its derived meta-action and ADE taken from its ``rewards``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vla.meta_action import KINEMATIC_OF, MetaAction, is_consistent
from vla.model.trajectory_tokens import TRAJ_TOKEN_RE

CONSISTENT, INCONSISTENT, UNPARSABLE, UNKNOWN, EPISODE = (
    "consistent", "inconsistent", "unparsable", "unknown", "episode")
REWARD_ORDER = ("format", "consistency", "trajectory", "grounding", "reasoning", "judge")
EPISODE_METRICS = ("pdms_like", "progress", "collision", "off_road", "ttc_violations",
                   "comfort", "decision_accuracy_lon", "decision_accuracy_lat")


@dataclass
class Facts:
    id: int
    kind: str
    sample_id: str | None
    parsed: bool | None = None             # None: no text (a baseline planner)
    written: dict | None = None            # {longitudinal, lateral} the model wrote
    derived: dict | None = None            # the deriver on its trajectory
    consistent_axes: tuple[bool, bool] | None = None
    verdict: str = UNKNOWN
    error: str | None = None               # "kind: message" when unparsable
    reasoning: str | None = None
    trajectory: list | None = None         # [[x, y, yaw], ...] ego frame, when known
    ade: float | None = None
    reward: float | None = None
    rewards: dict[str, float] = field(default_factory=dict)
    label: dict | None = None
    scenario: str | None = None
    step: int | None = None
    extra: dict = field(default_factory=dict)   # closed-loop fields and episode metrics

    @property
    def expert_disagrees(self) -> bool:
        """A closed-loop decision that is not the expert's choice on some axis."""
        return (self.extra.get("decision_correct_lon") is False
                or self.extra.get("decision_correct_lat") is False)

    @property
    def consistent(self) -> bool | None:
        return None if self.consistent_axes is None else all(self.consistent_axes)

    @property
    def failure(self) -> bool:
        """Unparsable, inconsistent, a closed-loop decision other than the expert's choice,
        or an episode with a crash."""
        if self.verdict in (UNPARSABLE, INCONSISTENT):
            return True
        if self.expert_disagrees:
            return True
        metrics = self.extra.get("metrics") or {}
        return bool(metrics.get("collision") or metrics.get("off_road"))

    @property
    def group_key(self) -> tuple:
        """Records of one sample (and one GRPO step) share a group: the k predictions."""
        return (self.kind, self.sample_id, self.step if self.kind == "grpo" else None)


def meta_text(meta: dict | None) -> str:
    return "–" if not meta else f"{meta.get('longitudinal')}, {meta.get('lateral')}"


def _meta_from_text(text: str | None) -> dict | None:
    if not text or "," not in text:
        return None
    lon, lat = (p.strip() for p in text.split(",", 1))
    return {"longitudinal": lon, "lateral": lat}


def axes_agree(written: dict, derived: dict) -> tuple[bool, bool]:
    """(longitudinal, lateral) agreement under :func:`vla.meta_action.is_consistent`."""
    try:
        return is_consistent(MetaAction(written["longitudinal"], written["lateral"]),
                             MetaAction(derived["longitudinal"], derived["lateral"]))
    except (KeyError, ValueError):
        lon = derived.get("longitudinal") in KINEMATIC_OF.get(written.get("longitudinal"), ())
        return lon, written.get("lateral") == derived.get("lateral")


def parse_raw(text: str):
    """``(Decision, None)`` or ``(None, ParseError)`` for a raw output, without a codec."""
    from vla.model.parser import ParseError, parse_output
    from vla.model.special_tokens import TRAJ_FUTURE_START

    tail = text.split(TRAJ_FUTURE_START, 1)[-1] if TRAJ_FUTURE_START in text else ""
    try:
        return parse_output(text, len(TRAJ_TOKEN_RE.findall(tail))), None
    except ParseError as exc:
        return None, exc


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def facts_of(record_id: int, record: dict, scenario: str | None = None) -> Facts:
    """The facts of one record; ``scenario`` fills in one the record does not carry."""
    kind = str(record.get("kind", "?"))
    f = Facts(id=record_id, kind=kind,
              sample_id=record.get("sample_id") or record.get("episode"),
              label=record.get("label"), scenario=record.get("scenario") or scenario,
              step=record.get("step") if isinstance(record.get("step"), int) else None)
    if kind == "closed_loop_episode":
        f.verdict = EPISODE
        f.extra = {k: record.get(k) for k in ("episode", "planner", "seed", "metrics", "gif")}
        metrics = record.get("metrics") or {}
        f.reward = _number(metrics.get("pdms_like", metrics.get("pdms")))
        return f
    for key in ("episode", "planner", "seed", "t", "expert_meta_action",
                "decision_correct_lon", "decision_correct_lat", "images", "trajectory_world",
                "completion"):
        if key in record:
            f.extra[key] = record[key]
    f.parsed = record.get("parsed")
    decision = record.get("decision")
    rewards = record.get("rewards") if isinstance(record.get("rewards"), dict) else None
    if "decision" not in record and rewards is not None and record.get("raw_output"):
        parsed, _ = parse_raw(record["raw_output"])     # an older grpo record: text only
        if parsed is not None:
            decision = {"reasoning": parsed.reasoning,
                        "meta_action": {"longitudinal": parsed.meta_action.longitudinal,
                                        "lateral": parsed.meta_action.lateral},
                        "trajectory_ids": parsed.trajectory_ids, "trajectory": None}
    if decision:
        f.written = decision.get("meta_action")
        f.reasoning = decision.get("reasoning")
        f.trajectory = decision.get("trajectory")
    f.derived = record.get("derived_meta_action")
    f.ade = _number(record.get("ade_m"))
    error = record.get("error")
    if isinstance(error, dict):
        f.error = f"{error.get('kind')}: {error.get('message')}"
    if rewards is not None:
        f.reward = _number(rewards.get("total"))
        f.rewards = {name: float(r["value"]) for name, r in rewards.items()
                     if isinstance(r, dict) and _number(r.get("value")) is not None}
        consistency = rewards.get("consistency") or {}
        if f.derived is None:
            f.derived = _meta_from_text(consistency.get("derived"))
        if f.ade is None:
            trajectory = rewards.get("trajectory") or {}  # ade_m: traces before ADE@3 s
            f.ade = _number(trajectory.get("ade_3s_m", trajectory.get("ade_m")))
        if f.error is None and rewards.get("error"):
            kind_ = (rewards.get("format") or {}).get("kind", "parse_error")
            f.error = f"{kind_}: {rewards['error']}"
    if f.parsed is None and record.get("raw_output") is not None:
        f.parsed = decision is not None
    if f.parsed is None:                # no text at all: a baseline planner in closed loop
        f.verdict = UNKNOWN
    elif not f.parsed:
        f.verdict = UNPARSABLE
        if f.error is None:
            f.error = "unparsable output"
    elif f.written and f.derived:
        f.consistent_axes = axes_agree(f.written, f.derived)
        f.verdict = CONSISTENT if all(f.consistent_axes) else INCONSISTENT
    return f


def virtual_fields(f: Facts) -> dict:
    """The derived names the filter language offers beside the record's own fields."""
    return {"id": f.id, "verdict": f.verdict, "failure": f.failure,
            "consistent": f.consistent, "written": f.written, "derived": f.derived,
            "ade": f.ade, "reward": f.reward, "scenario": f.scenario,
            "reasoning": f.reasoning, "error_kind": None if f.error is None
            else f.error.split(":", 1)[0]}


# Agents named in a reasoning: "id 3", "vehicle 3", "car 3", "the truck (id 12)".
AGENT_MENTION = re.compile(
    r"\b(?:id|vehicle|car|truck|agent|bus|cyclist|pedestrian|lead)\s*#?\s*(\d+)\b",
    re.IGNORECASE)


def agent_mentions(reasoning: str | None) -> list[tuple[int, int, int]]:
    """``(start, end, agent id)`` of every agent the reasoning names."""
    if not reasoning:
        return []
    return [(m.start(), m.end(), int(m.group(1))) for m in AGENT_MENTION.finditer(reasoning)]
