"""``vla traces report``: one self-contained HTML page of a trace file.

Records are grouped per sample (and per GRPO step: one group is the k completions of one
prompt); each group shows the camera grid (frames as rows), a top-down plot with the
ground-truth future and all k predicted trajectories (dashed: inconsistent), and one row
per record: the written meta-action beside the derived one with the disagreeing axis
flagged (in closed loop also the expert's choice from the same state, flagged when the
decision is not it), the verdict, ADE, reward components, the reasoning with the agents it names
marked. Every image is inline (base64 ``data:`` URIs); the page has no external script,
style sheet or font. A small inline script filters rows in the browser (failures only, kind,
scenario, free text). The same renderer serves ``vla traces view`` (:mod:`.server`), which
adds a server-side filter form.
"""

from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vla.trace_tools.facts import (
    EPISODE,
    EPISODE_METRICS,
    INCONSISTENT,
    REWARD_ORDER,
    UNPARSABLE,
    Facts,
    agent_mentions,
    meta_text,
)
from vla.trace_tools.figures import (
    PlotTrajectory,
    camera_grid,
    color_of,
    data_uri,
    file_data_uri,
    topdown_plot,
)
from vla.trace_tools.load import Entry, TraceFile
from vla.trace_tools.sample_lookup import SampleIndex, TrajectoryDecoder, critical_agent_ids
from vla.trace_tools.stats import compute_stats

DEFAULT_LIMIT = 200


@dataclass
class ReportConfig:
    limit: int = DEFAULT_LIMIT          # sample groups on the page
    title: str | None = None
    filter_expression: str | None = None
    filter_error: str | None = None
    server: bool = False                # the page of `vla traces view`


@dataclass
class RecordGroup:
    key: tuple
    entries: list[Entry]

    @property
    def first(self) -> Facts:
        return self.entries[0].facts

    @property
    def scenario(self) -> str | None:
        return next((e.facts.scenario for e in self.entries if e.facts.scenario), None)


def group_entries(entries: list[Entry]) -> list[RecordGroup]:
    """Groups in order of first appearance: one sample (and GRPO step) each."""
    groups: dict[tuple, RecordGroup] = {}
    for e in entries:
        key = e.facts.group_key
        if key not in groups:
            groups[key] = RecordGroup(key, [])
        groups[key].entries.append(e)
    return list(groups.values())


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def reasoning_html(reasoning: str | None, critical_ids: set[int]) -> str:
    """The reasoning, escaped, with every agent it names in a <mark>."""
    if not reasoning:
        return ""
    out, last = [], 0
    for start, end, agent in agent_mentions(reasoning):
        out.append(_e(reasoning[last:start]))
        cls = "agent critical" if agent in critical_ids else "agent"
        out.append(f'<mark class="{cls}" title="agent {agent}'
                   f'{" (critical in the label)" if agent in critical_ids else ""}">'
                   f"{_e(reasoning[start:end])}</mark>")
        last = end
    out.append(_e(reasoning[last:]))
    return "".join(out)


def _expert_cell(f: Facts) -> str:
    """The expert's choice of a closed-loop decision, flagged when the decision is not it;
    empty for other records."""
    expert = f.extra.get("expert_meta_action")
    correct = {axis: f.extra.get(f"decision_correct_{axis[:3]}")
               for axis in ("longitudinal", "lateral")}
    if not expert and all(c is None for c in correct.values()):
        return ""
    wrong = [axis for axis, c in correct.items() if c is False]
    mark = ""
    if wrong:
        mark = (' <span class="flag mismatch" title="not the expert&#39;s '
                f'{" and ".join(wrong)} choice">≠ expert</span>')
    elif all(c is True for c in correct.values()):
        mark = ' <span class="flag ok">= expert</span>'
    return f'<div class="exec">expert&#39;s choice: {_e(meta_text(expert))}{mark}</div>'


def _meta_cells(f: Facts) -> tuple[str, str]:
    """(written, derived) cells; a disagreeing axis is marked and the row flagged. In closed
    loop the derived cell also shows the expert's choice."""
    expert = _expert_cell(f)
    if f.verdict == UNPARSABLE:
        return (f'<span class="flag unparsable">unparsable</span> '
                f'<span class="error">{_e(f.error)}</span>', "–" + expert)
    if not f.written:
        return "–", _e(meta_text(f.derived)) + expert
    ok = f.consistent_axes or (True, True)
    axes = [f'<span class="axis{"" if good else " mismatch"}">{_e(f.written.get(a))}</span>'
            for a, good in zip(("longitudinal", "lateral"), ok, strict=True)]
    written = ", ".join(axes)
    if f.verdict == INCONSISTENT:
        bad = [a for a, good in zip(("longitudinal", "lateral"), ok, strict=True) if not good]
        written += (f' <span class="flag mismatch" title="the trajectory does not carry out '
                    f'the written {" and ".join(bad)} decision">≠ mismatch</span>')
    derived = _e(meta_text(f.derived)) if f.derived else "–"
    return written, derived + expert


def _rewards_cell(record: dict) -> str:
    rewards = record.get("rewards")
    if not isinstance(rewards, dict):
        return ""
    names = [n for n in REWARD_ORDER if isinstance(rewards.get(n), dict)]
    names += sorted(n for n, v in rewards.items() if isinstance(v, dict) and n not in names)
    parts = []
    for n in names:
        value = rewards[n].get("value")
        low = isinstance(value, (int, float)) and value < 0.5
        parts.append(f'<span class="rc{" low" if low else ""}">{_e(n)} '
                     f'{_num(value, 2) if isinstance(value, (int, float)) else _e(value)}'
                     f'</span>')
    return " ".join(parts)


def _search_text(f: Facts, record: dict) -> str:
    bits = [f.kind, f.sample_id, f.scenario, f.verdict, f.reasoning, meta_text(f.written),
            meta_text(f.derived), f.error, record.get("model"), f.extra.get("planner"),
            f"#{f.id}"]
    return " ".join(str(b) for b in bits if b).lower()


def _row_attrs(f: Facts, record: dict) -> str:
    return (f'class="rec{" failure" if f.failure else ""}" data-id="{f.id}" '
            f'data-failure="{int(f.failure)}" data-kind="{_e(f.kind)}" '
            f'data-scenario="{_e(f.scenario or "")}" data-verdict="{_e(f.verdict)}" '
            f'data-text="{_e(_search_text(f, record))}"')


class ReportRenderer:
    """Renders groups and pages; caches each group's HTML (the web app re-renders pages)."""

    def __init__(self, trace_path: Path, samples: SampleIndex | None = None,
                 decoder: TrajectoryDecoder | None = None):
        self.trace_path = Path(trace_path)
        self.samples = samples
        self.decoder = decoder
        self._cache: dict[tuple, str] = {}
        self._lock = threading.Lock()

    # -- one group --

    def _sample(self, sample_id) -> dict | None:
        if self.samples is None or sample_id is None:
            return None
        with self._lock:              # datasets rows are read under one lock
            return self.samples.row(sample_id)

    def _trajectory(self, entry: Entry, sample: dict | None):
        f = entry.facts
        if f.trajectory is not None:
            return f.trajectory
        if self.decoder is not None and sample is not None and entry.record.get("raw_output"):
            return self.decoder.decode(entry.record["raw_output"], sample)
        return None

    def _figures(self, group: RecordGroup, sample: dict | None, critical: list[dict]) -> str:
        figs = []
        if sample is not None and sample.get("images"):
            grid = camera_grid(sample["images"], sample.get("camera_names"),
                               sample.get("frame_times"))
            figs.append(f'<figure><img class="cams" alt="cameras × frames" '
                        f'src="{data_uri(grid)}"><figcaption>cameras (columns) × frames '
                        f'(rows)</figcaption></figure>')
        else:
            images = group.entries[0].record.get("images") or []
            inline = [file_data_uri(self.trace_path.parent / p) for p in images
                      if isinstance(p, str)]
            inline = [u for u in inline if u]
            if inline:
                figs.append('<figure><div class="cl-images">' + "".join(
                    f'<img class="cam" alt="camera" src="{u}">' for u in inline)
                    + "</div><figcaption>cameras</figcaption></figure>")
        trajectories = []
        for i, e in enumerate(group.entries):
            points = self._trajectory(e, sample)
            if points:
                trajectories.append(PlotTrajectory(points, color_of(i), f"#{e.id}",
                                                   dashed=e.facts.verdict == INCONSISTENT))
        future = sample.get("future") if sample is not None else None
        if trajectories or future is not None:
            agents = [c for c in critical if c.get("kind") == "agent"]
            background = sample.get("topdown") if sample is not None else None
            plot = topdown_plot(trajectories, future,
                                background if isinstance(background, Image.Image) else None,
                                agents)
            figs.append(f'<figure><img class="plot" alt="top-down plot" src="{data_uri(plot)}">'
                        f'<figcaption>top-down, ego frame: ground truth (black), '
                        f'{len(trajectories)} predicted (dashed: inconsistent), critical '
                        f'agents (orange)</figcaption></figure>')
        return f'<div class="figs">{"".join(figs)}</div>' if figs else ""

    def _episode_html(self, group: RecordGroup) -> str:
        e = group.entries[0]
        f, metrics = e.facts, e.record.get("metrics") or {}
        cells = "".join(f"<th>{_e(k)}</th>" for k in EPISODE_METRICS if k in metrics)
        values = "".join(f"<td>{'–' if metrics[k] is None else _e(metrics[k])}</td>"
                         for k in EPISODE_METRICS if k in metrics)
        gif = e.record.get("gif")
        uri = file_data_uri(self.trace_path.parent / gif) if isinstance(gif, str) else None
        media = (f'<figure><img class="gif" alt="episode" src="{uri}"><figcaption>'
                 f'{_e(gif)}</figcaption></figure>' if uri else "")
        return (f'<div class="figs">{media}</div><table class="records"><tbody>'
                f'<tr {_row_attrs(f, e.record)}><td>#{f.id}</td><td>'
                f'{_e(f.extra.get("planner"))}, seed {_e(f.extra.get("seed"))}</td>'
                f'<td><table class="metrics"><tr>{cells}</tr><tr>{values}</tr></table></td>'
                f'</tr></tbody></table>')

    def group_html(self, group: RecordGroup) -> str:
        key = (group.key, tuple(e.id for e in group.entries))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        f = group.first
        tags = [f'<span class="tag kind">{_e(f.kind)}</span>']
        if f.step is not None:
            tags.append(f'<span class="tag">step {f.step}</span>')
        if group.scenario:
            tags.append(f'<span class="tag">{_e(group.scenario)}</span>')
        if f.extra.get("planner") and f.kind != "closed_loop_episode":
            tags.append(f'<span class="tag">{_e(f.extra["planner"])}</span>')
        name = {"closed_loop_episode": "episode", "closed_loop": "decision"}.get(f.kind, "sample")
        head = f'<h2>{name} {_e(f.sample_id)} {"".join(tags)}</h2>'
        if f.verdict == EPISODE:
            body = self._episode_html(group)
        else:
            sample = self._sample(f.sample_id)
            critical = []
            if sample is not None:
                raw = sample.get("critical") or "[]"
                critical = json.loads(raw) if isinstance(raw, str) else list(raw)
            ids = critical_agent_ids(critical)
            info = []
            label = f.label or (None if sample is None else {
                "longitudinal": sample.get("decision_lon"), "lateral": sample.get("decision_lat")})
            if label:
                info.append(f"label: <b>{_e(meta_text(label))}</b>")
            if sample is not None:
                info.append(f"command {_e(sample.get('command'))}, speed "
                            f"{float(sample.get('ego_speed', 0)):.1f} m/s")
                if sample.get("reasoning"):
                    info.append(f'label reasoning: <i>{reasoning_html(sample["reasoning"], ids)}'
                                f"</i>")
            head += f'<p class="info">{" · ".join(info)}</p>' if info else ""
            rows = []
            for i, e in enumerate(group.entries):
                ef = e.facts
                written, derived = _meta_cells(ef)
                rows.append(
                    f'<tr {_row_attrs(ef, e.record)}>'
                    f'<td><span class="swatch" style="background:{color_of(i)}"></span>'
                    f"#{ef.id}</td>"
                    f'<td><span class="verdict {ef.verdict}">{_e(ef.verdict)}</span></td>'
                    f"<td>{written}</td><td>{derived}</td><td>{_num(ef.ade)}</td>"
                    f"<td>{_num(ef.reward)}</td><td>{_rewards_cell(e.record)}</td>"
                    f'<td class="reasoning">{reasoning_html(ef.reasoning, ids)}</td></tr>')
            body = (self._figures(group, sample, critical)
                    + '<table class="records"><thead><tr><th>id</th><th>verdict</th>'
                      "<th>written</th><th>derived from trajectory</th><th>ADE m</th>"
                      "<th>reward</th><th>components</th><th>reasoning</th></tr></thead>"
                      f'<tbody>{"".join(rows)}</tbody></table>')
        out = (f'<section class="group" data-kind="{_e(f.kind)}" '
               f'data-scenario="{_e(group.scenario or "")}">{head}{body}</section>')
        self._cache[key] = out
        return out

    # -- the page --

    def page(self, trace: TraceFile, entries: list[Entry], config: ReportConfig) -> str:
        groups = group_entries(entries)
        shown = groups[:max(config.limit, 0)]
        shown_records = sum(len(g.entries) for g in shown)
        kinds = sorted({e.facts.kind for g in shown for e in g.entries})
        scenarios = sorted({e.facts.scenario for g in shown for e in g.entries
                            if e.facts.scenario})
        stats = compute_stats([e.facts for e in entries])
        title = config.title or f"Reasoning traces: {trace.path.name}"
        notes = []
        if config.filter_expression:
            notes.append(f"filter <code>{_e(config.filter_expression)}</code>: "
                         f"{len(entries)} of {len(trace.entries)} records match")
        if len(shown) < len(groups):
            notes.append(f'<span class="cap">showing the first {len(shown)} of {len(groups)} '
                         f"sample groups ({shown_records} of {len(entries)} records): raise "
                         f"<code>--limit</code> to see more</span>")
        summary = (f"all {len(entries)} records: parse rate {_num(stats.get('parse_rate'))} · "
                   f"consistency "
                   f"{_num(stats.get('consistency'))} · mean ADE {_num(stats.get('ade_m'))} m"
                   + (f" · mean reward {_num(stats.get('reward'))}" if stats.get("reward")
                      is not None else "")
                   + " · " + ", ".join(f"{k} {n}" for k, n in stats["kinds"].items()))
        server_form = ""
        if config.server:
            error = (f'<p class="error" id="filter-error">{_e(config.filter_error)}</p>'
                     if config.filter_error else "")
            server_form = (
                '<form id="server-filter-form" method="get" action="">'
                '<input name="filter" id="server-filter" size="60" placeholder="server filter, '
                'e.g. kind == grpo and rewards.consistency.value &lt; 0.5" '
                f'value="{_e(config.filter_expression or "")}">'
                f'<input type="hidden" name="limit" value="{config.limit}">'
                '<button type="submit" id="server-filter-apply">apply</button> '
                '<a href="?">clear</a> · <a href="api/records">JSON</a></form>' + error)
        options = lambda values: "".join(  # noqa: E731
            f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
        body = "".join(self.group_html(g) for g in shown)
        return PAGE.format(
            title=_e(title), source=_e(str(trace.path)), count=shown_records,
            groups=len(shown), summary=_e(summary), notes="".join(f"<p>{n}</p>" for n in notes),
            server_form=server_form, kinds=options(kinds), scenarios=options(scenarios),
            body=body or '<p class="empty">no records</p>', style=STYLE, script=SCRIPT)


def write_report(renderer: ReportRenderer, trace: TraceFile, entries: list[Entry],
                 config: ReportConfig, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(renderer.page(trace, entries, config), encoding="utf-8")
    return out


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:8px 16px;
z-index:2}
h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:0 0 4px}
main{padding:8px 16px}
section.group{background:#fff;border:1px solid #ddd;border-radius:6px;margin:10px 0;
padding:8px 12px}
.tag{display:inline-block;background:#eef;border-radius:3px;padding:0 5px;margin-left:4px;
font-size:12px;font-weight:normal}
.info{margin:2px 0 6px;color:#444}
.figs{display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start}
figure{margin:0}figcaption{font-size:11px;color:#666}
img.cams{image-rendering:pixelated;width:480px}img.plot{width:306px}
.cl-images img{width:160px;margin-right:2px}
table.records{border-collapse:collapse;width:100%;margin-top:6px;font-size:13px}
table.records th,table.records td{border-top:1px solid #eee;padding:3px 6px;
vertical-align:top;text-align:left}
td.reasoning{max-width:560px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
.verdict{padding:0 4px;border-radius:3px;font-size:12px}
.verdict.consistent{background:#d8f5dc}.verdict.inconsistent{background:#fde2c8}
.verdict.unparsable{background:#f9c9c9}.verdict.episode{background:#e4e4f7}
.axis.mismatch{color:#b00;font-weight:bold;text-decoration:underline wavy #b00}
.flag{font-size:11px;padding:0 4px;border-radius:3px}
.flag.mismatch,.flag.unparsable{background:#b00;color:#fff}.flag.ok{background:#2a7;color:#fff}
.error{color:#b00;font-family:monospace;font-size:12px}
mark.agent{background:#cde;border-radius:2px}mark.agent.critical{background:#fc3;
font-weight:bold}
.rc{display:inline-block;font-size:11px;background:#eee;border-radius:3px;padding:0 3px;
margin:1px}.rc.low{background:#fbd}
.cap{color:#a40;font-weight:bold}
#controls{display:flex;gap:12px;align-items:center;flex-wrap:wrap;margin-top:4px}
#shown-count{font-weight:bold}
table.metrics td,table.metrics th{padding:0 6px;border:none}
[hidden]{display:none !important}
"""

SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.rec'));
  var groups = Array.prototype.slice.call(document.querySelectorAll('section.group'));
  var failures = document.getElementById('failures-only');
  var kind = document.getElementById('kind-filter');
  var scenario = document.getElementById('scenario-filter');
  var text = document.getElementById('text-filter');
  var shown = document.getElementById('shown-count');
  function apply() {
    var q = text.value.trim().toLowerCase(), n = 0;
    rows.forEach(function (r) {
      var ok = (!failures.checked || r.dataset.failure === '1') &&
               (!kind.value || r.dataset.kind === kind.value) &&
               (!scenario.value || r.dataset.scenario === scenario.value) &&
               (!q || r.dataset.text.indexOf(q) >= 0);
      r.hidden = !ok;
      if (ok) { n += 1; }
    });
    groups.forEach(function (g) {
      g.hidden = g.querySelector('tr.rec:not([hidden])') === null;
    });
    shown.textContent = n + ' of ' + rows.length + ' records shown';
  }
  [failures, kind, scenario].forEach(function (el) { el.addEventListener('change', apply); });
  text.addEventListener('input', apply);
  apply();
})();
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body><header>
<h1>{title}</h1>
<p><code>{source}</code>: <span id="record-count">{count}</span> records in {groups} sample
groups on this page · {summary}</p>{notes}{server_form}
<div id="controls">
<label><input type="checkbox" id="failures-only"> failures only (unparsable or
inconsistent)</label>
<select id="kind-filter"><option value="">all kinds</option>{kinds}</select>
<select id="scenario-filter"><option value="">all scenarios</option>{scenarios}</select>
<input type="search" id="text-filter" placeholder="search: reasoning, sample id, error">
<span id="shown-count"></span>
</div></header>
<main>{body}</main>
<script>{script}</script>
</body></html>
"""
