"""Find a trace record's sample in a data set (``--data``) and its trajectory codec.

A :class:`SampleIndex` maps ``sample_id`` to (split, row) over every split of a data set
built by ``vla data build``, reading only the ``sample_id`` and ``scenario`` columns up
front; rows (with their images) are decoded on demand and cached.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from vla.trace_tools import TraceToolError


class SampleIndex:
    def __init__(self, data_dir: str | Path):
        from vla.data.build import load_dataset_dir

        try:
            self.dataset, self.meta = load_dataset_dir(data_dir)
        except (FileNotFoundError, ValueError) as exc:
            raise TraceToolError(f"--data: {exc}") from None
        self.path = Path(data_dir)
        self._where: dict[str, tuple[str, int]] = {}
        self._info: dict[str, dict] = {}
        for split in self.dataset:
            columns = self.dataset[split].select_columns(
                ["sample_id", "scenario", "decision_lon", "decision_lat"])
            for i, (sid, scenario, lon, lat) in enumerate(zip(
                    columns["sample_id"], columns["scenario"], columns["decision_lon"],
                    columns["decision_lat"], strict=True)):
                self._where.setdefault(sid, (split, i))
                self._info.setdefault(sid, {"scenario": scenario, "label": {
                    "longitudinal": lon, "lateral": lat}})
        self.row = lru_cache(maxsize=256)(self._row)

    def __contains__(self, sample_id) -> bool:
        return sample_id in self._where

    def info(self, sample_id) -> dict:
        """``{scenario, label}`` of a sample ({} when unknown), without decoding images."""
        return self._info.get(sample_id, {})

    def _row(self, sample_id: str) -> dict | None:
        where = self._where.get(sample_id)
        if where is None:
            return None
        split, i = where
        return self.dataset[split][i]

    def critical(self, sample_id: str) -> list[dict]:
        row = self.row(sample_id)
        if row is None:
            return []
        critical = row.get("critical") or "[]"
        return json.loads(critical) if isinstance(critical, str) else list(critical)


def critical_agent_ids(critical: list[dict]) -> set[int]:
    return {int(c["id"]) for c in critical if c.get("kind") == "agent" and "id" in c}


def find_model_dir(trace_path: Path, model_dir: str | Path | None) -> Path | None:
    """The model whose codec decodes text-only records: ``--model-dir``, else the ``base`` of
    a GRPO run's ``config.json`` beside the trace file (when that folder has a codec)."""
    from vla.model.build import CODEC_DIR

    if model_dir is not None:
        p = Path(model_dir)
        if not (p / CODEC_DIR).is_dir():
            raise TraceToolError(f"--model-dir: {p} has no trajectory codec ({CODEC_DIR}/)")
        return p
    config = trace_path.parent / "config.json"
    try:
        base = json.loads(config.read_text()).get("base")
    except (OSError, ValueError, AttributeError):
        return None
    if not base:
        return None
    for candidate in (Path(base), trace_path.parent / base):
        if (candidate / CODEC_DIR).is_dir():
            return candidate
    return None


class TrajectoryDecoder:
    """Decodes the trajectory tokens of a record that kept only its text (``grpo``)."""

    def __init__(self, model_dir: Path):
        from vla.model.loading import load_codec_of

        self.model_dir = model_dir
        self.codec = load_codec_of(model_dir)

    def decode(self, raw_output: str, sample: dict) -> list | None:
        from vla.model.parser import ParseError, parse_output
        from vla.trajectory.types import ego_state_of

        try:
            decision = parse_output(raw_output, self.codec.num_tokens, self.codec,
                                    ego_state_of(sample))
        except (ParseError, ValueError):
            return None
        return None if decision.trajectory is None else decision.trajectory.tolist()
