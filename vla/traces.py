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
