"""Trace records: one JSON object per model decision, appended to a JSONL file.

One schema for every kind, in code: a dataclass per kind (:class:`PredictRecord`,
:class:`RolloutRecord`, :class:`GRPORecord`, :class:`EvalRecord`, :class:`ClosedLoopRecord`,
:class:`ClosedLoopEpisodeRecord`) with ``to_json()`` / :meth:`TraceRecord.from_json`, and one
builder per kind that makes it from a :class:`vla.policy.PolicyOutput` and its sample
(:func:`predict_record`, :func:`rollout_record`, :func:`grpo_record`, :func:`eval_record`,
:func:`closed_loop_record`, :func:`closed_loop_episode_record`). Fields a record was read with
that its schema does not name are kept in ``extra`` and written back.

A trace file is UTF-8 JSON Lines: one object per line, appended by :func:`append_trace`
(which adds ``time``) in one write. :func:`read_jsonl` is the one reader; its policy for a
killed writer: a **last** line without its newline that is not JSON is a torn write and is
skipped with a warning (:func:`trim_log` cuts it off a resumable log); any other line that
is not a JSON object is an error naming ``file:line``. A record's id in ``vla traces`` is
its line number in the file.

Fields every record has:

``kind``
    ``predict`` (``vla predict``, vla/predict.py), ``rollout`` (``vla rollout``,
    vla/serving/rollout.py), ``grpo`` (GRPO's rollouts, vla/rl/grpo.py), ``eval`` (validation
    at the end of a training stage, vla/training/validate.py), ``closed_loop`` (one decision of
    a closed-loop episode) or ``closed_loop_episode`` (the summary of one episode).
``time``
    Unix seconds when the record was written.

Fields of a decision record (every kind but ``closed_loop_episode``):

``sample_id``
    The data-set row (``EEEEE-KKKK``: episode, keyframe) or, in closed loop,
    ``<episode>@<t>``.
``model``
    The model directory or served model / adapter name.
``raw_output``
    The model's text. ``parsed`` (bool): it follows the output grammar.
``error``
    ``{kind, message}`` of the parse error (vla/model/parser.py), or null.
``decision``
    ``{reasoning, meta_action: {longitudinal, lateral}, trajectory_ids, trajectory}`` (the
    trajectory as ``[[x, y, yaw], ...]`` at 10 Hz in the ego frame at t0, metres / radians),
    or null when unparsable.
``derived_meta_action``
    ``{longitudinal, lateral}`` that vla/meta_action.py reads from the decoded trajectory,
    or null. The written meta-action is *consistent* when :func:`vla.meta_action.is_consistent`
    accepts the pair on both axes.
``ade_m``
    Average displacement error of the trajectory against the sample's logged future (m).
``label``
    The sample's labelled decision ``{longitudinal, lateral[, reasoning]}``, when known.
``tokens`` / ``seconds``
    ``{prompt, completion}`` token counts and the generation time.

The fields ``raw_output`` .. ``ade_m`` are written by :func:`decision_fields` (the same
for every kind).

Per kind:

``rollout``
    ``completion`` (index among the n samples of one request).
``grpo``
    ``step``, ``token_ids`` and ``rewards``: ``{total, error, format: {value}, consistency:
    {value, longitudinal, lateral, derived: "lon, lat"}, trajectory: {value, ade_3s_m, ...},
    grounding: {value, named, critical}, reasoning: {value, ...}[, judge]}``, beside the
    decision fields like every other kind (traces written before they carried
    ``decision`` had only ``raw_output`` and ``parsed``).
``eval``
    ``metrics``: ``{parsed, correct_lon, correct_lat, consistent_lon, consistent_lat, l2_avg_3s,
    ...}``.
``closed_loop``
    ``episode``, ``planner`` (``model``, ``expert-tracked``, ``damped-prior`` or
    ``constant-velocity``; ``expert`` drives itself and writes no decision records),
    ``scenario``, ``seed``, ``step``, ``t`` (s), the decision fields (a planner without text
    has only ``derived_meta_action``), ``expert_meta_action`` (``{longitudinal, lateral}``:
    the expert's choice from the same state, see vla/evaluation/expert_choice.py, or null),
    ``decision_correct_lon`` and ``decision_correct_lat`` (bool: the planner's meta-action
    on that axis agrees with the expert's choice; the written one, or for a planner without
    text the one derived from its plan; null when the output did not parse), ``images``
    (PNG paths relative to the trace file's folder; may be absent), ``ego_speed`` (m/s) and
    ``trajectory_world`` (``[[x, y], ...]`` or null).
``closed_loop_episode``
    ``episode``, ``planner``, ``scenario``, ``seed``, ``metrics``: ``{collision, off_road,
    progress, ttc_violations, min_ttc_s, comfort, comfort_peaks, pdms_like,
    decision_accuracy_lon, decision_accuracy_lat
    (the mean of the episode's non-null decision_correct_lon / _lat, or null), decisions,
    parse_rate, seconds_simulated}`` and ``gif`` (a path relative to the trace file's
    folder, or null).

Optional everywhere: ``scenario`` (else looked up in the data set by ``sample_id``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from vla.meta_action import MetaAction

TRACE_KINDS = ("predict", "rollout", "grpo", "eval", "closed_loop", "closed_loop_episode")
META_ACTION_FIELDS = ("derived_meta_action", "expert_meta_action")


# -- records ---------------------------------------------------------------------------------

@dataclass(kw_only=True)
class TraceRecord:
    """What every record has: ``time`` (set by :func:`append_trace`) and ``extra`` (fields
    read that the schema does not name, written back unchanged). ``KIND`` is the ``kind``
    field; ``OMIT_IF_NONE`` the fields a record of the kind leaves out when they are None."""

    KIND: ClassVar[str] = ""
    OMIT_IF_NONE: ClassVar[frozenset] = frozenset({"time"})
    time: float | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The record as today's JSON: ``time`` and ``kind`` first, the fields in schema
        order, meta-actions as ``{longitudinal, lateral}``."""
        out = {} if self.time is None else {"time": self.time}
        out["kind"] = self.KIND
        for f in dataclasses.fields(self):
            if f.name in ("time", "extra"):
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self.OMIT_IF_NONE:
                continue
            out[f.name] = value.to_json() if isinstance(value, MetaAction) else value
        out.update(self.extra)
        return out

    @staticmethod
    def from_json(obj: dict) -> TraceRecord:
        """The typed record of one JSON object, by its ``kind``; a ``ValueError`` saying what
        is wrong with an object that is not a record of a known kind."""
        if not isinstance(obj, dict):
            raise ValueError(f"a trace record is a JSON object, got {type(obj).__name__}")
        kind = obj.get("kind")
        cls = RECORD_CLASSES.get(kind)
        if cls is None:
            raise ValueError(f"unknown trace record kind {kind!r}; known: {list(TRACE_KINDS)}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in obj.items() if k in names}
        for key in META_ACTION_FIELDS:
            if values.get(key) is not None:
                try:
                    values[key] = MetaAction.from_json(values[key])
                except (KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"{kind} record: {key} is not a meta-action "
                                     f"({values[key]!r}: {exc})") from None
        extra = {k: v for k, v in obj.items() if k not in names and k != "kind"}
        return cls(**values, extra=extra)


@dataclass(kw_only=True)
class DecisionRecord(TraceRecord):
    """The fields of one model output on one sample, shared by every decision kind (see the
    module docstring); ``decision`` and ``error`` are their JSON forms."""

    OMIT_IF_NONE: ClassVar[frozenset] = frozenset(
        {"time", "model", "label", "tokens", "seconds", "scenario"})
    sample_id: str | None = None
    model: str | None = None
    raw_output: str | None = None
    parsed: bool | None = None
    error: dict | None = None
    decision: dict | None = None
    derived_meta_action: MetaAction | None = None
    ade_m: float | None = None
    label: dict | None = None
    tokens: dict | None = None
    seconds: float | None = None
    scenario: str | None = None

    @property
    def written_meta_action(self) -> MetaAction | None:
        """The meta-action the output wrote (None when it did not parse or wrote none)."""
        meta = (self.decision or {}).get("meta_action")
        return None if meta is None else MetaAction.from_json(meta)

    @property
    def trajectory(self) -> np.ndarray | None:
        """The decoded trajectory ``(T, 3)``, or None."""
        traj = (self.decision or {}).get("trajectory")
        return None if traj is None else np.asarray(traj, float)


@dataclass(kw_only=True)
class PredictRecord(DecisionRecord):
    KIND: ClassVar[str] = "predict"


@dataclass(kw_only=True)
class RolloutRecord(DecisionRecord):
    KIND: ClassVar[str] = "rollout"
    completion: int = 0


@dataclass(kw_only=True)
class EvalRecord(DecisionRecord):
    KIND: ClassVar[str] = "eval"
    metrics: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class GRPORecord(DecisionRecord):
    KIND: ClassVar[str] = "grpo"
    step: int = 0
    token_ids: list[int] | None = None
    rewards: dict = field(default_factory=dict)


@dataclass(kw_only=True)
class ClosedLoopRecord(DecisionRecord):
    """One decision of a closed-loop episode; a planner without text has ``parsed`` None and
    only ``derived_meta_action`` among the decision fields."""

    KIND: ClassVar[str] = "closed_loop"
    episode: str = ""
    planner: str = ""
    seed: int = 0
    step: int = 0
    t: float = 0.0
    expert_meta_action: MetaAction | None = None
    decision_correct_lon: bool | None = None
    decision_correct_lat: bool | None = None
    images: list[str] = field(default_factory=list)
    ego_speed: float | None = None
    trajectory_world: list | None = None


@dataclass(kw_only=True)
class ClosedLoopEpisodeRecord(TraceRecord):
    KIND: ClassVar[str] = "closed_loop_episode"
    episode: str = ""
    planner: str = ""
    scenario: str | None = None
    seed: int = 0
    metrics: dict = field(default_factory=dict)
    gif: str | None = None


RECORD_CLASSES: dict[str, type[TraceRecord]] = {
    cls.KIND: cls for cls in (PredictRecord, RolloutRecord, GRPORecord, EvalRecord,
                              ClosedLoopRecord, ClosedLoopEpisodeRecord)}


# -- builders --------------------------------------------------------------------------------

def decision_fields(text: str | None, decision, error, sample: dict) -> dict:
    """The fields every record shares about one model output on one sample.

    ``raw_output``, ``parsed``, ``error``, ``decision``, the meta-action the deriver reads
    from the decoded trajectory, and its ADE against the sample's future (m; None without a
    future, as in closed loop).
    """
    from vla.meta_action import derive_meta_action
    from vla.trajectory.metrics import displacement_errors

    derived = ade = None
    if decision is not None and decision.trajectory is not None:
        d = derive_meta_action(decision.trajectory, float(sample["ego_speed"]))
        derived = {"longitudinal": d.longitudinal, "lateral": d.lateral}
        if sample.get("future") is not None:  # none in closed loop
            ade = round(float(displacement_errors(decision.trajectory,
                                                  np.asarray(sample["future"]))["ade"]), 3)
    return {"raw_output": text, "parsed": decision is not None,
            "error": None if error is None else {"kind": error.kind, "message": str(error)},
            "decision": None if decision is None else decision.to_json(),
            "derived_meta_action": derived, "ade_m": ade}


def _decision_values(output, sample: dict) -> dict:
    """:func:`decision_fields` of a PolicyOutput, the meta-action typed."""
    values = decision_fields(output.text, output.decision, output.error, sample)
    values["derived_meta_action"] = MetaAction.from_json(values["derived_meta_action"])
    return values


def _tokens(output) -> dict:
    return {"prompt": output.prompt_tokens, "completion": output.completion_tokens}


def _full_label(sample: dict) -> dict:
    return {"longitudinal": sample["decision_lon"], "lateral": sample["decision_lat"],
            "reasoning": sample["reasoning"]}


def predict_record(output, sample: dict, model: str) -> PredictRecord:
    """``vla predict``'s record of a policy's output on one sample."""
    return PredictRecord(sample_id=sample["sample_id"], model=model,
                         **_decision_values(output, sample), label=_full_label(sample),
                         tokens=_tokens(output), seconds=round(output.seconds, 3))


def rollout_record(output, sample: dict, model: str, completion: int) -> RolloutRecord:
    """One of a rollout's ``n`` outputs (``completion``: its index) on one sample."""
    return RolloutRecord(sample_id=sample["sample_id"], completion=completion, model=model,
                         **_decision_values(output, sample),
                         label={"longitudinal": sample.get("decision_lon"),
                                "lateral": sample.get("decision_lat")},
                         tokens=_tokens(output), seconds=round(output.seconds, 3))


def eval_record(output, sample: dict, model: str, metrics: dict) -> EvalRecord:
    """A validation record: the output on one sample and its per-sample ``metrics``."""
    return EvalRecord(sample_id=sample["sample_id"], model=model,
                      **_decision_values(output, sample), label=_full_label(sample),
                      metrics=metrics, tokens=_tokens(output), seconds=round(output.seconds, 3))


def grpo_record(output, sample: dict, model: str, step: int, rewards: dict) -> GRPORecord:
    """One GRPO rollout: the output (its decision parsed once, by the policy), its token ids
    and its rewards (``Scored.to_json()`` of :mod:`vla.rl.rewards`)."""
    return GRPORecord(step=step, sample_id=sample["sample_id"], model=model,
                      **_decision_values(output, sample), token_ids=list(output.token_ids),
                      rewards=rewards,
                      label={"longitudinal": sample.get("decision_lon"),
                             "lateral": sample.get("decision_lat")},
                      tokens=_tokens(output), seconds=round(output.seconds, 3))


def closed_loop_record(output, *, episode: str, planner: str, scenario: str, seed: int,
                       step: int, t: float, ego_speed: float,
                       derived_meta_action: MetaAction | None = None,
                       expert_meta_action: MetaAction | None = None,
                       correct: tuple[bool, bool] | None = None, images: list[str] = (),
                       trajectory_world=None) -> ClosedLoopRecord:
    """One closed-loop decision. ``output`` is the planner's PolicyOutput; one without text
    (a kinematic planner) keeps only ``derived_meta_action``, the one read from its plan.
    ``correct``: the planner's meta-action agrees with the expert's on (lon, lat), or None."""
    t = round(t, 2)
    if output.text is not None:
        values = _decision_values(output, {"ego_speed": ego_speed, "future": None})
    else:
        values = {"raw_output": None, "parsed": None, "error": None, "decision": None,
                  "derived_meta_action": derived_meta_action, "ade_m": None}
    return ClosedLoopRecord(
        episode=episode, planner=planner, scenario=scenario, seed=seed, step=step, t=t,
        sample_id=f"{episode}@{t:.1f}", **values, expert_meta_action=expert_meta_action,
        decision_correct_lon=None if correct is None else bool(correct[0]),
        decision_correct_lat=None if correct is None else bool(correct[1]),
        images=list(images), ego_speed=round(float(ego_speed), 3),
        trajectory_world=None if trajectory_world is None
        else np.round(np.asarray(trajectory_world, float), 2).tolist(),
        seconds=round(output.seconds, 3))


def closed_loop_episode_record(*, episode: str, planner: str, scenario: str, seed: int,
                               metrics: dict, gif: str | None) -> ClosedLoopEpisodeRecord:
    """The summary of one closed-loop episode."""
    return ClosedLoopEpisodeRecord(episode=episode, planner=planner, scenario=scenario,
                                   seed=seed, metrics=metrics, gif=gif)


# -- files -----------------------------------------------------------------------------------

def append_trace(path: str | Path, record: dict | TraceRecord) -> None:
    """Append one record (a :class:`TraceRecord` or its JSON) with the current ``time``, in
    one write, creating the folder."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(record, TraceRecord):
        record = record.to_json()
    record = {"time": round(time.time(), 3), **{k: v for k, v in record.items() if k != "time"}}
    with p.open("a") as f:
        f.write(json.dumps(record) + "\n")


class TraceLine(NamedTuple):
    number: int  # 1-based line number in the file: the record's id in ``vla traces``
    record: dict


def read_jsonl(path: str | Path, missing_ok: bool = False,
               warn_torn: bool = True) -> list[TraceLine]:
    """Every record of a JSONL file with its line number; blank lines are skipped.

    A torn last line (no newline at its end and not JSON: a writer killed mid-write) is
    skipped, with a warning unless ``warn_torn`` is False. Any other line that is not a JSON
    object raises a ``ValueError`` naming ``file:line``. A missing file is an error, or no
    records with ``missing_ok``.
    """
    p = Path(path)
    if missing_ok and not p.is_file():
        return []
    lines = p.read_text(encoding="utf-8", errors="replace").split("\n")
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # the last line, without its newline: torn
                if warn_torn:
                    warnings.warn(f"{p}:{number}: skipped a torn last line (a writer killed "
                                  f"mid-line)", stacklevel=2)
                continue
            raise ValueError(f"{p}:{number}: not a JSON trace record ({exc.msg} at column "
                             f"{exc.colno})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{p}:{number}: not a trace record (a JSON "
                             f"{type(record).__name__}, not an object)")
        out.append(TraceLine(number, record))
    return out


def read_traces(path: str | Path, missing_ok: bool = False) -> list[dict]:
    """The records of :func:`read_jsonl`, without their line numbers."""
    return [line.record for line in read_jsonl(path, missing_ok=missing_ok)]


def read_records(path: str | Path) -> list[TraceRecord]:
    """The typed records of a trace file (:meth:`TraceRecord.from_json`); a ``ValueError``
    naming ``file:line`` for a record of no known kind."""
    out = []
    for number, record in read_jsonl(path):
        try:
            out.append(TraceRecord.from_json(record))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    return out


def trim_log(path: str | Path, last_step: int) -> int:
    """Drop records after ``last_step`` (steps a killed run did after its last checkpoint)
    and a torn last line.

    The resumed run redoes those steps and logs them again; trimming keeps each step
    once in the log. Returns how many records were dropped.
    """
    p = Path(path)
    records = [line.record for line in read_jsonl(p, missing_ok=True, warn_torn=False)]
    kept = [r for r in records if r.get("step", 0) <= last_step]
    if len(kept) != len(records) or (p.is_file() and not p.read_text().endswith("\n")):
        tmp = p.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(p)
    return len(records) - len(kept)
