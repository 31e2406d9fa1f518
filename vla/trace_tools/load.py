"""Read a trace file into entries (id = line number, record, facts), or a one-line error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vla.trace_tools import TraceToolError
from vla.trace_tools.facts import EPISODE, Facts, facts_of, virtual_fields
from vla.trace_tools.query import Filter


@dataclass
class Entry:
    id: int
    record: dict
    facts: Facts


@dataclass
class TraceFile:
    path: Path
    entries: list[Entry]

    def by_id(self, record_id: int) -> Entry:
        for entry in self.entries:
            if entry.id == record_id:
                return entry
        ids = [e.id for e in self.entries]
        span = f"ids {ids[0]}..{ids[-1]}" if ids else "no records"
        raise TraceToolError(f"{self.path}: no record with id {record_id} ({span}; the id is "
                             f"the line number, see `vla traces ls`)")

    def select(self, flt: Filter | None) -> list[Entry]:
        if flt is None:
            return list(self.entries)
        return [e for e in self.entries if flt(e.record, virtual_fields(e.facts))]


def load_trace_file(path: str | Path, sample_info=None) -> TraceFile:
    """Every record of ``path`` (:func:`vla.traces.read_jsonl`: a torn last line is skipped
    with a warning, any other malformed line is a one-line error naming ``file:line``);
    ``sample_info(sample_id)`` -> ``{scenario, label}`` fills in what a record does not carry
    (``SampleIndex.info`` of a data set)."""
    from vla.traces import read_jsonl

    p = Path(path)
    if not p.exists():
        raise TraceToolError(f"no trace file at {p}")
    if not p.is_file():
        raise TraceToolError(f"{p} is not a file")
    try:
        numbered = read_jsonl(p)
    except ValueError as exc:
        raise TraceToolError(str(exc)) from None
    entries = []
    for number, record in numbered:
        info = {} if sample_info is None else sample_info(record.get("sample_id"))
        facts = facts_of(number, record, info.get("scenario"))
        if facts.label is None and facts.verdict != EPISODE:
            facts.label = info.get("label")
        entries.append(Entry(number, record, facts))
    return TraceFile(p, entries)
