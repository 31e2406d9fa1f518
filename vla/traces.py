"""Trace records: one JSON object per model decision, appended to a JSONL file.

Fields common to every record: ``kind`` (predict, rollout, grpo, eval), ``time``,
``sample_id``, ``model``, ``raw_output``, ``parsed`` (bool), ``error`` ({kind, message}
or null), ``decision`` (reasoning, meta_action, trajectory_ids, trajectory) or null,
``derived_meta_action`` (the deriver on the decoded trajectory) or null,
``label`` (the sample's decision, when known), ``tokens`` and ``seconds``.
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
        ade = round(float(displacement_errors(decision.trajectory,
                                              np.asarray(sample["future"]))["ade"]), 3)
    return {"raw_output": text, "parsed": decision is not None,
            "error": None if error is None else {"kind": error.kind, "message": str(error)},
            "decision": None if decision is None else decision.to_json(),
            "derived_meta_action": derived, "ade_m": ade}
