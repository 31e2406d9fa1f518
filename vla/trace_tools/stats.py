"""``vla traces stats``: counts per kind, parse rate, consistency, ADE, rewards, per scenario.

Rates are over the records they apply to: the parse rate over decision records with a text
(a closed-loop baseline planner writes none), consistency
(written vs derived meta-action, both axes; per axis beside it) over parsed records whose
derived meta-action is known, label agreement over parsed records with a label. Closed-loop
decisions add the decision accuracy against the expert's choice per axis
(``decision_accuracy_lon`` / ``_lat``: the mean of the non-null ``decision_correct_lon`` /
``_lat`` flags, over decisions); closed-loop episodes add their mean metrics per planner
(there the decision accuracies are means over episodes of each episode's accuracy).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from rich.console import Console
from rich.table import Table

from vla.trace_tools.facts import EPISODE, EPISODE_METRICS, REWARD_ORDER, UNPARSABLE, Facts


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def _summary(facts: list[Facts]) -> dict:
    decisions = [f for f in facts if f.verdict != EPISODE]
    parsed = [f for f in decisions if f.verdict != UNPARSABLE]
    judged = [f for f in parsed if f.consistent_axes is not None]
    labelled = [f for f in parsed if f.label and f.written]
    out = {"records": len(decisions),
           "parse_rate": _mean(f.verdict != UNPARSABLE for f in decisions
                               if f.parsed is not None),
           "consistency": _mean(f.consistent for f in judged),
           "consistency_lon": _mean(f.consistent_axes[0] for f in judged),
           "consistency_lat": _mean(f.consistent_axes[1] for f in judged),
           "label_agreement": _mean(
               f.written.get("longitudinal") == f.label.get("longitudinal")
               and f.written.get("lateral") == f.label.get("lateral") for f in labelled),
           "ade_m": _mean(f.ade for f in parsed),
           "reward": _mean(f.reward for f in decisions)}
    for axis in ("lon", "lat"):
        flags = [f.extra.get(f"decision_correct_{axis}") for f in decisions]
        if any(flag is not None for flag in flags):
            out[f"decision_accuracy_{axis}"] = _mean(flags)
    names = {n for f in decisions for n in f.rewards}
    if names:
        ordered = [n for n in REWARD_ORDER if n in names] + sorted(names - set(REWARD_ORDER))
        out["rewards"] = {n: _mean(f.rewards.get(n) for f in decisions) for n in ordered}
    return out


def compute_stats(facts: list[Facts]) -> dict:
    """Everything ``vla traces stats`` prints, as a JSON-ready dict."""
    result = {"records": len(facts), "kinds": dict(Counter(f.kind for f in facts)),
              **{k: v for k, v in _summary(facts).items() if k != "records"},
              "decision_records": sum(f.verdict != EPISODE for f in facts)}
    scenarios = defaultdict(list)
    for f in facts:
        if f.verdict != EPISODE and f.scenario:
            scenarios[f.scenario].append(f)
    if scenarios:
        result["per_scenario"] = {s: _summary(fs) for s, fs in sorted(scenarios.items())}
    episodes = [f for f in facts if f.verdict == EPISODE]
    if episodes:
        planners = defaultdict(list)
        for f in episodes:
            planners[str(f.extra.get("planner"))].append(f.extra.get("metrics") or {})
        result["closed_loop_episodes"] = {
            planner: {"episodes": len(ms), **{k: _mean(m.get(k) for m in ms)
                                              for k in EPISODE_METRICS}}
            for planner, ms in sorted(planners.items())}
    return result


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


SUMMARY_COLUMNS = ("records", "parse_rate", "consistency", "consistency_lon",
                   "consistency_lat", "label_agreement", "ade_m", "reward")


SHORT = {"parse_rate": "parsed", "consistency_lon": "cons. lon", "consistency_lat": "cons. lat",
         "label_agreement": "= label", "ade_m": "ADE m"}


def print_stats(stats: dict, console: Console, source: str) -> None:
    kinds = ", ".join(f"{k} {n}" for k, n in stats["kinds"].items())
    console.print(f"[bold]{source}[/bold]: {stats['records']} records ({kinds or 'none'})")
    table = Table(title="decisions", header_style="bold")
    table.add_column("")
    for c in SUMMARY_COLUMNS:
        table.add_column(SHORT.get(c, c), justify="right")
    rows = [("all", {**stats, "records": stats["decision_records"]})]
    rows += list(stats.get("per_scenario", {}).items())
    for name, s in rows:
        table.add_row(name, *(_fmt(s.get(c)) for c in SUMMARY_COLUMNS))
    console.print(table)
    if "decision_accuracy_lon" in stats or "decision_accuracy_lat" in stats:
        console.print("closed-loop decision accuracy against the expert's choice (over "
                      f"decisions): lon {_fmt(stats.get('decision_accuracy_lon'))}, "
                      f"lat {_fmt(stats.get('decision_accuracy_lat'))}")
    if stats.get("rewards"):
        rewards = Table(title="mean reward components", header_style="bold")
        names = list(stats["rewards"])
        rewards.add_column("")
        for n in ["total", *names]:
            rewards.add_column(n, justify="right")
        for name, s in rows:
            if s.get("rewards"):
                rewards.add_row(name, _fmt(s.get("reward")),
                                *(_fmt(s["rewards"].get(n)) for n in names))
        console.print(rewards)
    if stats.get("closed_loop_episodes"):
        episodes = Table(title="closed-loop episodes (means)", header_style="bold")
        episodes.add_column("planner")
        episodes.add_column("episodes", justify="right")
        for k in EPISODE_METRICS:
            episodes.add_column(k.replace("_", " "), justify="right")
        for planner, m in stats["closed_loop_episodes"].items():
            episodes.add_row(planner, str(m["episodes"]), *(_fmt(m[k]) for k in EPISODE_METRICS))
        console.print(episodes)
