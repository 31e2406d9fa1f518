"""``vla traces ls``: one line per record.

Columns: id (the line number), kind, sample id, the written meta-action, the derived one, a
match mark (``✓`` consistent, ``✗`` inconsistent, ``!`` unparsable, ``–`` unknown, e.g. a
baseline planner's decision without text; ``≠`` added when a closed-loop decision is not the
expert's choice from the same state, ``decision_correct_lon`` or ``decision_correct_lat``
false; an episode gets ``✗`` for a collision or leaving the road), ADE (m) and the total
reward (GRPO) or the PDMS-like score (a closed-loop episode).
"""

from __future__ import annotations

from vla.trace_tools.facts import CONSISTENT, EPISODE, INCONSISTENT, UNPARSABLE, Facts, meta_text
from vla.trace_tools.load import Entry

MARKS = {CONSISTENT: "✓", INCONSISTENT: "✗", UNPARSABLE: "!"}


def header(width: int = 22) -> str:
    return (f"{'id':>6}  {'kind':<19} {'sample_id':<{width}} {'written':<30} {'derived':<30} "
            f"{'ok':<2} {'ade_m':>7} {'reward':>7}")


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def line_of(f: Facts, width: int = 22) -> str:
    if f.verdict == EPISODE:
        metrics = f.extra.get("metrics") or {}
        written = f"{f.extra.get('planner')} seed {f.extra.get('seed')}"
        derived = (f"collision {metrics.get('collision')} off_road {metrics.get('off_road')}")
        mark = "✗" if f.failure else "✓"
        return (f"{f.id:>6}  {f.kind:<19} {str(f.sample_id):<{width}} {written:<30} {derived:<30} "
                f"{mark:<2} {'–':>7} {_num(f.reward):>7}")
    written = meta_text(f.written)
    if f.verdict == UNPARSABLE:
        written = f"unparsable ({(f.error or '?').split(':', 1)[0]})"
    mark = MARKS.get(f.verdict, "–")
    if f.expert_disagrees:
        mark += "≠"
    return (f"{f.id:>6}  {f.kind:<19} {str(f.sample_id):<{width}} {written[:30]:<30} "
            f"{meta_text(f.derived)[:30]:<30} {mark:<2} {_num(f.ade):>7} {_num(f.reward):>7}")


def list_lines(entries: list[Entry], total: int, limit: int | None = None,
               expression: str | None = None) -> list[str]:
    shown = entries if limit is None else entries[:limit]
    width = max([22, *(len(str(e.facts.sample_id)) for e in shown)])
    lines = [header(width), *(line_of(e.facts, width) for e in shown)]
    note = f"{len(shown)} of {total} records"
    if expression:
        note += f" ({len(entries)} match {expression!r})"
    if len(shown) < len(entries):
        note += f"; --limit {limit}"
    lines.append(note)
    return lines
