"""Trace records: one JSON object per model decision, appended to a JSONL file.

One schema for every kind. A trace file is UTF-8 JSON Lines: one object per line, appended
by :func:`append_trace` (which adds ``time``); a line torn by a killed writer is the only
malformed line a reader may meet (``vla traces`` reports it as ``file:line``). A record's
id in ``vla traces`` is its line number in the file.

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

The fields ``raw_output`` .. ``ade_m`` are written by :func:`decision_fields`.

Per kind:

``rollout``
    ``completion`` (index among the n samples of one request).
``grpo``
    ``step``, ``token_ids`` and ``rewards``: ``{total, error, format: {value}, consistency:
    {value, longitudinal, lateral, derived: "lon, lat"}, trajectory: {value, ade_3s_m, ...},
    grounding: {value, named, critical}, reasoning: {value, ...}[, judge]}``. A ``grpo``
    record carries ``raw_output`` and ``parsed`` but neither ``decision`` nor
    ``derived_meta_action``: readers parse ``raw_output`` and take the derived meta-action and
    the ADE from ``rewards``.
``eval``
    ``metrics``: ``{parsed, correct_lon, correct_lat, consistent_lon, consistent_lat, l2_avg_3s,
    ...}``.
``closed_loop``
    ``episode``, ``planner`` (``model``, ``expert-tracked``, ``damped-prior`` or
    ``constant-velocity``; ``expert`` drives itself and writes no decision records),
    ``scenario``, ``seed``, ``step``, ``t`` (s), the decision fields (a planner without text
    has only ``derived_meta_action``), ``expert_meta_action`` (``{longitudinal, lateral}``:
    the expert's choice from the same state, see vla/evaluation/closed_loop.py, or null),
    ``decision_correct_lon`` and ``decision_correct_lat`` (bool: the planner's meta-action
    on that axis agrees with the expert's choice; the written one, or for a planner without
    text the one derived from its plan; null when the output did not parse), ``images``
    (PNG paths relative to the trace file's folder; may be absent), ``ego_speed`` (m/s) and
    ``trajectory_world`` (``[[x, y], ...]`` or null).
``closed_loop_episode``
    ``episode``, ``planner``, ``scenario``, ``seed``, ``metrics``: ``{collision, off_road,
    progress, ttc_violations, min_ttc_s, comfort, comfort_peaks, pdms_like, pdms (the same
    number as pdms_like, for older readers), decision_accuracy_lon, decision_accuracy_lat
    (the mean of the episode's non-null decision_correct_lon / _lat, or null), decisions,
    parse_rate, seconds_simulated}`` and ``gif`` (a path relative to the trace file's
    folder, or null).

Optional everywhere: ``scenario`` (else looked up in the data set by ``sample_id``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def append_trace(path: str | Path, record: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    record = {"time": round(time.time(), 3), **record}
    with p.open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_traces(path: str | Path) -> list[dict]:
    out = []
    with Path(path).open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON trace record ({exc})") from exc
    return out


TRACE_KINDS = ("predict", "rollout", "grpo", "eval", "closed_loop", "closed_loop_episode")


def read_numbered(path: str | Path) -> list[tuple[int, dict]]:
    """``(line number, record)`` for every non-blank line; a ``ValueError`` naming
    ``file:line`` for a line that is not a JSON object (a torn or foreign line)."""
    out = []
    with Path(path).open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON trace record ({exc.msg} at "
                                 f"column {exc.colno})") from exc
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: not a trace record (a JSON "
                                 f"{type(record).__name__}, expected an object)")
            out.append((number, record))
    return out


def read_log(path: str | Path) -> list[dict]:
    """The records of a JSONL log, skipping a line torn by a killed writer ([] if absent)."""
    p = Path(path)
    if not p.is_file():
        return []
    records = []
    for line in p.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a killed run
            continue
    return records


def trim_log(path: str | Path, last_step: int) -> int:
    """Drop records after ``last_step`` (steps a killed run did after its last checkpoint).

    The resumed run redoes those steps and logs them again; trimming keeps each step
    once in the log. Returns how many records were dropped.
    """
    p = Path(path)
    records = read_log(p)
    kept = [r for r in records if r.get("step", 0) <= last_step]
    if len(kept) != len(records) or (p.is_file() and not p.read_text().endswith("\n")):
        tmp = p.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(p)
    return len(records) - len(kept)


def decision_fields(text: str, decision, error, sample: dict) -> dict:
    """The fields every record shares about one model output on one sample.

    ``raw_output``, ``parsed``, ``error``, ``decision``, the meta-action the deriver reads
    from the decoded trajectory, and its ADE against the sample's future (m).
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
