"""``vla traces show``: one record in the terminal (rich).

The reasoning with the agents it names highlighted (the sample's critical agents, from
``--data``, in bold on yellow; other agents it names underlined), the written meta-action
beside the derived one and the label with disagreeing axes in red (in closed loop also the
expert's choice from the same state, red on the axes where the decision is not the
expert's), reward components, metrics, and a verdict: consistent, inconsistent (which axis)
or unparsable (the error).
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from vla.trace_tools.facts import (
    CONSISTENT,
    EPISODE,
    EPISODE_METRICS,
    INCONSISTENT,
    REWARD_ORDER,
    UNPARSABLE,
    agent_mentions,
    meta_text,
)
from vla.trace_tools.load import Entry
from vla.trace_tools.sample_lookup import critical_agent_ids

CRITICAL_STYLE = "bold black on yellow"
OTHER_AGENT_STYLE = "underline cyan"
CRITICAL_KEYS = ("kind", "id", "class", "motion", "relation", "rule", "lane", "state", "command")


def highlighted_reasoning(reasoning: str, critical_ids: set[int]) -> Text:
    text = Text(reasoning)
    for start, end, agent in agent_mentions(reasoning):
        text.stylize(CRITICAL_STYLE if agent in critical_ids else OTHER_AGENT_STYLE, start, end)
    return text


def verdict_text(entry: Entry) -> Text:
    f = entry.facts
    if f.verdict == CONSISTENT:
        return Text("verdict: CONSISTENT — the written meta-action matches the trajectory",
                    style="bold green")
    if f.verdict == INCONSISTENT:
        axes = [name for name, ok in zip(("longitudinal", "lateral"), f.consistent_axes,
                                         strict=True) if not ok]
        detail = "; ".join(f"{a}: wrote {f.written[a]}, the trajectory shows {f.derived[a]}"
                           for a in axes)
        return Text(f"verdict: INCONSISTENT — {detail}", style="bold red")
    if f.verdict == UNPARSABLE:
        return Text(f"verdict: UNPARSABLE — {f.error}", style="bold red")
    if f.verdict == EPISODE:
        return Text("verdict: episode " + ("FAILED (collision or off road)" if f.failure
                                           else "completed"),
                    style="bold red" if f.failure else "bold green")
    if f.parsed is None:
        return Text("verdict: no text (a baseline planner): nothing written to check",
                    style="yellow")
    return Text("verdict: unknown (no derived meta-action in the record)", style="yellow")


def _meta_table(entry: Entry) -> Table:
    f = entry.facts
    table = Table(title="meta-action", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("longitudinal")
    table.add_column("lateral")
    axes_ok = f.consistent_axes or (True, True)
    rows = [("written", f.written, axes_ok), ("derived from trajectory", f.derived, axes_ok)]
    if f.label:
        rows.append(("label", f.label, None))
    expert = f.extra.get("expert_meta_action")
    if expert:
        rows.append(("expert's choice", expert,
                     (f.extra.get("decision_correct_lon") is not False,
                      f.extra.get("decision_correct_lat") is not False)))
    for name, meta, ok in rows:
        if not meta:
            table.add_row(name, "–", "–")
            continue
        cells = []
        for axis, good in zip(("longitudinal", "lateral"), ok or (True, True), strict=True):
            cells.append(Text(str(meta.get(axis)), style="" if good else "bold red"))
        table.add_row(name, *cells)
    return table


def _rewards_table(record: dict) -> Table | None:
    rewards = record.get("rewards")
    if not isinstance(rewards, dict):
        return None
    table = Table(title=f"rewards (total {rewards.get('total')})", header_style="bold")
    table.add_column("component")
    table.add_column("value", justify="right")
    table.add_column("details")
    names = [n for n in REWARD_ORDER if n in rewards] + sorted(
        n for n, v in rewards.items() if isinstance(v, dict) and n not in REWARD_ORDER)
    for name in names:
        r = rewards[name]
        details = ", ".join(f"{k}={v}" for k, v in r.items() if k != "value")
        table.add_row(name, f"{r.get('value')}", details)
    return table


def _metrics_table(entry: Entry) -> Table:
    f, record = entry.facts, entry.record
    table = Table(title="metrics", show_header=False)
    table.add_column("name")
    table.add_column("value")
    if f.ade is not None:
        table.add_row("ADE (m)", f"{f.ade:.3f}")
    for key, value in (record.get("metrics") or {}).items():
        if f.verdict != EPISODE or key not in EPISODE_METRICS:
            table.add_row(key, str(value))
    for key in EPISODE_METRICS:
        if f.verdict == EPISODE and key in (record.get("metrics") or {}):
            table.add_row(key, str(record["metrics"][key]))
    for key in ("planner", "episode", "seed", "t", "decision_correct_lon",
                "decision_correct_lat", "completion", "gif"):
        if key in f.extra:
            table.add_row(key, str(f.extra[key]))
    if record.get("tokens"):
        table.add_row("tokens", ", ".join(f"{k} {v}" for k, v in record["tokens"].items()))
    if record.get("seconds") is not None:
        table.add_row("seconds", str(record["seconds"]))
    return table


def render_show(entry: Entry, console: Console, critical: list[dict] | None = None) -> None:
    f, record = entry.facts, entry.record
    head = [f"record {f.id}", f.kind,
            f"{'episode' if f.verdict == EPISODE else 'sample'} {f.sample_id}"]
    if f.step is not None:
        head.append(f"step {f.step}")
    if record.get("model"):
        head.append(f"model {record['model']}")
    if f.scenario:
        head.append(f"scenario {f.scenario}")
    console.print(Text(" · ".join(head), style="bold"))
    console.print(verdict_text(entry))
    critical = critical or []
    ids = critical_agent_ids(critical)
    if f.reasoning is not None:
        parts = [highlighted_reasoning(f.reasoning, ids)]
        if critical:
            named = {a for _, _, a in agent_mentions(f.reasoning)}
            lines = []
            for c in critical:
                desc = " ".join(str(c[k]) for k in CRITICAL_KEYS if c.get(k) is not None)
                if c.get("kind") == "agent":
                    desc += "  ✓ named" if int(c["id"]) in named else "  ✗ not named"
                lines.append(desc)
            parts.append(Text("critical (label): " + "; ".join(lines), style="dim"))
        console.print(Panel(Group(*parts), title="reasoning", title_align="left"))
    if f.label and f.label.get("reasoning"):
        console.print(Panel(highlighted_reasoning(f.label["reasoning"], ids),
                            title="label reasoning", title_align="left", style="dim"))
    if f.verdict != EPISODE:
        console.print(_meta_table(entry))
    rewards = _rewards_table(record)
    if rewards is not None:
        console.print(rewards)
    console.print(_metrics_table(entry))
    if f.verdict == UNPARSABLE and record.get("raw_output"):
        raw = record["raw_output"]
        console.print(Panel(Text(raw[:600] + (" …" if len(raw) > 600 else "")),
                            title="raw output", title_align="left"))
    if f.verdict != EPISODE and f.written and f.derived:
        console.print(Text(f"written {meta_text(f.written)}  |  derived "
                           f"{meta_text(f.derived)}", style="dim"))
