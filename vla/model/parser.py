"""Model text → Decision, or a typed error saying what is wrong and where.

Expected grammar (Alpamayo-R1 delimiters)::

    <|cot_start|> reasoning <|cot_end|>
    <|meta_action_start|> longitudinal, lateral <|meta_action_end|>
    <|traj_future_start|> exactly N trajectory tokens <|traj_future_end|>

followed optionally by ``<|im_end|>`` / ``<|endoftext|>``. Trajectory tokens may not
appear in the reasoning. The trajectory ids are decoded to metres (ego frame) by the
codec saved beside the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from vla.meta_action import LATERAL, LONGITUDINAL, MetaAction
from vla.model.special_tokens import (
    COT_END,
    COT_START,
    ENDOFTEXT,
    IM_END,
    META_ACTION_END,
    META_ACTION_START,
    TRAJ_FUTURE_END,
    TRAJ_FUTURE_START,
)
from vla.model.trajectory_tokens import TRAJ_TOKEN_RE


class ParseError(ValueError):
    """The output does not follow the grammar; ``kind`` names the problem."""

    kind = "parse_error"

    def __init__(self, message: str, position: int | None = None):
        where = f" at character {position}" if position is not None else ""
        super().__init__(f"{message}{where}")
        self.position = position


class MissingDelimiterError(ParseError):
    kind = "missing_delimiter"


class TrajectoryTokenInReasoningError(ParseError):
    kind = "trajectory_token_in_reasoning"


class UnknownMetaActionError(ParseError):
    kind = "unknown_meta_action"


class TrajectoryLengthError(ParseError):
    kind = "wrong_trajectory_length"


class UnexpectedTextError(ParseError):
    kind = "unexpected_text"


@dataclass
class Decision:
    reasoning: str
    meta_action: MetaAction
    trajectory_ids: list[int]
    trajectory: np.ndarray | None = None  # (T, 3) metres, ego frame; None if not decoded
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"reasoning": self.reasoning,
                "meta_action": {"longitudinal": self.meta_action.longitudinal,
                                "lateral": self.meta_action.lateral},
                "trajectory_ids": self.trajectory_ids,
                "trajectory": None if self.trajectory is None
                else np.round(self.trajectory, 3).tolist()}


def _expect(text: str, token: str, pos: int) -> int:
    """Position right after ``token`` found at ``pos`` (whitespace allowed before)."""
    stripped = len(text[pos:]) - len(text[pos:].lstrip())
    start = pos + stripped
    if not text.startswith(token, start):
        found = text[start:start + 30]
        raise MissingDelimiterError(f"expected {token}, found {found!r}", start)
    return start + len(token)


def parse_output(text: str, num_tokens: int, codec=None, ego_state=None) -> Decision:
    """Parse model output; decode the trajectory when ``codec`` and ``ego_state`` are given."""
    if not isinstance(text, str):
        raise TypeError(f"model output must be a string, got {type(text).__name__}")
    body = text
    for end in (IM_END, ENDOFTEXT):
        cut = body.find(end)
        if cut >= 0:
            body = body[:cut]
    pos = _expect(body, COT_START, 0)
    cot_end = body.find(COT_END, pos)
    if cot_end < 0:
        raise MissingDelimiterError(f"missing {COT_END} after the reasoning", pos)
    reasoning = body[pos:cot_end]
    inner = TRAJ_TOKEN_RE.search(reasoning)
    if inner:
        raise TrajectoryTokenInReasoningError(
            f"trajectory token {inner.group(0)} inside the reasoning", pos + inner.start())
    for delimiter in (COT_START, META_ACTION_START, META_ACTION_END, TRAJ_FUTURE_START,
                      TRAJ_FUTURE_END):
        if delimiter in reasoning:
            raise UnexpectedTextError(f"{delimiter} inside the reasoning",
                                      pos + reasoning.find(delimiter))
    pos = _expect(body, META_ACTION_START, cot_end + len(COT_END))
    meta_end = body.find(META_ACTION_END, pos)
    if meta_end < 0:
        raise MissingDelimiterError(f"missing {META_ACTION_END}", pos)
    meta = [p.strip() for p in body[pos:meta_end].split(",")]
    if len(meta) != 2 or meta[0] not in LONGITUDINAL or meta[1] not in LATERAL:
        raise UnknownMetaActionError(
            f"meta-action {body[pos:meta_end]!r} is not 'longitudinal, lateral' with "
            f"longitudinal in {LONGITUDINAL} and lateral in {LATERAL}", pos)
    pos = _expect(body, TRAJ_FUTURE_START, meta_end + len(META_ACTION_END))
    traj_end = body.find(TRAJ_FUTURE_END, pos)
    if traj_end < 0:
        raise MissingDelimiterError(f"missing {TRAJ_FUTURE_END}", pos)
    span = body[pos:traj_end]
    ids = [int(m.group(1)) for m in TRAJ_TOKEN_RE.finditer(span)]
    leftover = TRAJ_TOKEN_RE.sub("", span).strip()
    if leftover:
        raise UnexpectedTextError(f"text {leftover[:30]!r} among the trajectory tokens", pos)
    if len(ids) != num_tokens:
        raise TrajectoryLengthError(f"{len(ids)} trajectory tokens, expected {num_tokens}", pos)
    trailing = body[traj_end + len(TRAJ_FUTURE_END):].strip()
    if trailing:
        raise UnexpectedTextError(f"text {trailing[:30]!r} after {TRAJ_FUTURE_END}",
                                  traj_end + len(TRAJ_FUTURE_END))
    trajectory = None
    if codec is not None and ego_state is not None:
        # the trajectory is written under the meta-action just before it
        ego_state = replace(ego_state, intent_lon=meta[0], intent_lat=meta[1])
        trajectory = codec.decode(np.asarray(ids), ego_state)
    return Decision(reasoning.strip(), MetaAction(meta[0], meta[1]), ids, trajectory)


def meta_action_strings() -> list[str]:
    return [f"{lon}, {lat}" for lon in LONGITUDINAL for lat in LATERAL]



