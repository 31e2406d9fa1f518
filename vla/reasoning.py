"""What a reasoning text claims, checked against the scene and against the action it writes.

A reasoning is read in two parts: the *situation* (everything before its last ``so …``) and
the *stated decision* (the last ``so <longitudinal> and <lateral>`` clause, in the label
sentences' own phrasing). Three checks, each a plain function:

- **grounding** (:func:`grounding`): the observable facts the situation claims
  (:data:`FACT_PATTERNS`: a vehicle in our lane, on the left / right, stopped, braking,
  cutting in, slower, room in a lane, right of way, the kind of place, a clear lane, the
  route's turn) against the facts the label's critical components state (written by
  :mod:`vla.data.labels` beside each component). The score is the F-beta measure with
  beta = 0.5 (precision weighs twice recall), so a sentence that lists every fact scores
  low. No agent ids and no hidden quantities (a driver's target speed) are facts: neither
  is visible in the inputs.
- **stated decision** (:func:`stated_decision`): the decision the words state must equal
  the meta-action written after them ("... so keep speed and keep the lane" followed by
  ``accelerate, turn_left`` is a contradiction).
- **coherence** (:func:`situation_admits`): the situation must admit the meta-action, by
  the labels' own cause → decision table (:data:`ADMITTED_LON`): a stopped or braking
  vehicle ahead admits slowing, stopping, following or leaving the lane, never speeding up
  or keeping speed in the lane; a right of way admits yielding; a free lane admits neither
  following nor yielding; a slower car ahead with room in a lane admits the lane change
  to that side; a route turn admits that turn. A reasoning that states no situation admits
  nothing.

Simplifications: facts are found by phrase patterns over English text written in the
labels' vocabulary (a paraphrase the patterns miss counts as not stated), and numbers
(gaps, speeds) are not checked against the scene.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from vla.meta_action import MetaAction

FACT_PATTERNS: dict[str, str] = {
    "lead": r"\b(lead|leading) (car|vehicle)\b|\b(car|vehicle|truck) ahead\b|\bin our lane\b",
    "left": r"\bon the left\b|\bfrom the left\b",
    "right": r"\bon the right\b|\bfrom the right\b",
    "stopped": r"\bstopped\b|\bstanding still\b|\bdid not move\b",
    "braking": r"\bbrak(e|es|ing)\b",
    "cutting_in": r"\bcut(s|ting)? in\b",
    "slower": r"\bslower\b",
    "room_left": r"\bleft lane has room\b|\broom (on|to) the left\b",
    "room_right": r"\bright lane has room\b|\broom (on|to) the right\b",
    "priority": r"\bright of way\b|\bpriority\b|\bgive way\b",
    "merge": r"\bmerge\b|\bmerging\b",
    "junction": r"\bjunction\b|\bintersection\b",
    "roundabout": r"\broundabout\b",
    "clear": r"\bclear\b|\bfree road\b",
    "route_left": r"\broute turns left\b",
    "route_right": r"\broute turns right\b",
}
_COMPILED = {name: re.compile(p, re.IGNORECASE) for name, p in FACT_PATTERNS.items()}

# the stated decision, in the labels' phrasing (vla/data/labels.py LON_PHRASE / LAT_PHRASE)
LON_WORDS: dict[str, str] = {
    "stop": r"\bstop\b", "yield": r"\byield\b|\bgive way\b", "follow": r"\bfollow\b",
    "decelerate": r"\bdecelerate\b|\bslow down\b|\bbrake\b",
    "keep_speed": r"\bkeep (our )?speed\b|\bhold (our )?speed\b",
    "accelerate": r"\baccelerate\b|\bspeed up\b",
}
LAT_WORDS: dict[str, str] = {
    "keep_lane": r"\bkeep (the|our) lane\b|\bstay in (the|our) lane\b",
    "lane_change_left": r"\bchange lanes? to the left\b|\bmove to the left lane\b",
    "lane_change_right": r"\bchange lanes? to the right\b|\bmove to the right lane\b",
    "turn_left": r"\bturn left\b", "turn_right": r"\bturn right\b",
}
# "so keep speed and change lane to the left" is how the labels word follow + lane change
STATED_LON_ADMITS = {"keep_speed": ("keep_speed", "follow")}

LANE_CHANGES = ("lane_change_left", "lane_change_right")
SLOWING = ("stop", "decelerate", "yield", "follow")
# situation fact → longitudinal decisions it admits (a lane change is admitted wherever the
# fact is in LANE_CHANGE_ESCAPES: the labels leave a blocked lane that way)
ADMITTED_LON: dict[str, tuple[str, ...]] = {
    "stopped": SLOWING,
    "braking": SLOWING,
    "cutting_in": (*SLOWING, "keep_speed", "accelerate"),  # a faster car cutting in
    "priority": ("yield", "stop", "decelerate"),
    "clear": ("stop", "decelerate", "keep_speed", "accelerate"),
    "lead": ("stop", "decelerate", "keep_speed", "accelerate", "follow", "yield"),
}
LANE_CHANGE_ESCAPES = ("stopped", "braking", "cutting_in", "lead")
ADMITTED_LAT: dict[str, tuple[str, ...]] = {
    "room_left": ("lane_change_left",), "room_right": ("lane_change_right",),
    "route_left": ("turn_left",), "route_right": ("turn_right",),
}


def split_reasoning(text: str) -> tuple[str, str]:
    """(situation, decision clause): the text before and after its last ``so``."""
    matches = list(re.finditer(r"\bso\b", text, re.IGNORECASE))
    if not matches:
        return text, ""
    cut = matches[-1].start()
    return text[:cut], text[cut:]


def claimed_facts(text: str) -> set[str]:
    """The facts the situation part of ``text`` states."""
    situation, _ = split_reasoning(text)
    return {name for name, pattern in _COMPILED.items() if pattern.search(situation)}


def critical_components(sample: dict) -> list[dict]:
    critical = sample["critical"]
    return json.loads(critical) if isinstance(critical, str) else list(critical)


def label_facts(sample: dict) -> set[str]:
    """The facts the label's critical components state; a clear error for a data set built
    before components carried them."""
    facts: set[str] = set()
    for component in critical_components(sample):
        if "facts" not in component:
            raise ValueError(f"sample {sample.get('sample_id', '?')}: its critical components "
                             f"carry no 'facts' (a data set built by an older vla): rebuild "
                             f"it with `vla data build`")
        facts.update(component["facts"])
    return facts


@dataclass(frozen=True)
class Grounding:
    value: float
    precision: float
    recall: float
    claimed: tuple[str, ...]
    expected: tuple[str, ...]

    def components(self) -> dict:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "claimed": list(self.claimed), "expected": list(self.expected)}


def grounding(reasoning: str, sample: dict, beta: float = 0.5) -> Grounding:
    """F-beta of the claimed facts against the label's (1 when both are empty)."""
    claimed, expected = claimed_facts(reasoning), label_facts(sample)
    hit = len(claimed & expected)
    precision = hit / len(claimed) if claimed else float(not expected)
    recall = hit / len(expected) if expected else float(not claimed)
    b2 = beta * beta
    value = 0.0 if precision + recall == 0 else (1 + b2) * precision * recall / (
        b2 * precision + recall)
    return Grounding(value, precision, recall, tuple(sorted(claimed)), tuple(sorted(expected)))


def stated_decision(reasoning: str) -> tuple[str | None, str | None]:
    """(longitudinal, lateral) the decision clause states in words; None where it states none
    (the first phrase found on each axis)."""
    _, clause = split_reasoning(reasoning)

    def first(words: dict[str, str]) -> str | None:
        found = [(m.start(), name) for name, p in words.items()
                 if (m := re.search(p, clause, re.IGNORECASE))]
        return min(found)[1] if found else None

    return first(LON_WORDS), first(LAT_WORDS)


def states_the_meta_action(reasoning: str, meta: MetaAction) -> bool:
    """True when the words state a decision on both axes and it is the written meta-action."""
    lon, lat = stated_decision(reasoning)
    if lon is None or lat is None:
        return False
    return meta.longitudinal in STATED_LON_ADMITS.get(lon, (lon,)) and meta.lateral == lat


def situation_admits(facts: set[str], meta: MetaAction) -> bool:
    """Whether the stated situation admits the meta-action (see the module docstring)."""
    if not facts:
        return False
    lon_facts = [f for f in facts if f in ADMITTED_LON]
    for fact in lon_facts:
        escape = fact in LANE_CHANGE_ESCAPES and meta.lateral in LANE_CHANGES
        if meta.longitudinal not in ADMITTED_LON[fact] and not escape:
            return False
    if meta.longitudinal == "follow" and "lead" not in facts and "cutting_in" not in facts:
        return False  # nothing to follow
    if meta.longitudinal == "yield" and "priority" not in facts:
        return False  # nobody to yield to
    lat_facts = [f for f in facts if f in ADMITTED_LAT]
    return all(meta.lateral in ADMITTED_LAT[f] for f in lat_facts)


def coherence(reasoning: str, meta: MetaAction) -> dict[str, bool]:
    """Both reasoning checks of a decision: words = meta-action, situation admits it."""
    return {"states_meta_action": states_the_meta_action(reasoning, meta),
            "situation_admits": situation_admits(claimed_facts(reasoning), meta)}
