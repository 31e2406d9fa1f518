"""``vla traces``: the filter language, ls / show / stats on real records, the HTML report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from trace_records import build_trace

from vla.cli import main
from vla.trace_tools.facts import facts_of, virtual_fields
from vla.trace_tools.load import load_trace_file
from vla.trace_tools.query import FilterError, parse_filter
from vla.trace_tools.show import CRITICAL_STYLE, highlighted_reasoning
from vla.trace_tools.stats import compute_stats


@pytest.fixture(scope="module")
def built(small_data_dir, tmp_path_factory):
    return build_trace(small_data_dir, tmp_path_factory.mktemp("traces"))


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["traces", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def records_of(built, kind: str) -> dict[int, dict]:
    """Record id → record, of one kind, read straight from the file."""
    lines = built.path.read_text().splitlines()
    return {number: record for number, record in
            ((n, json.loads(line)) for n, line in enumerate(lines, 1))
            if record["kind"] == kind}


def record_ids(built, kind: str) -> dict[str, int]:
    """Sample id (closed loop: ``<episode>@<t>``, or the episode) → record id, of one kind."""
    return {r.get("sample_id") or r["episode"]: n for n, r in records_of(built, kind).items()}


# -- the filter language --

RECORD = {"kind": "grpo", "parsed": True, "step": 3, "sample_id": "00034-0070",
          "planner": "constant-velocity", "decision_correct_lon": False,
          "decision_correct_lat": True,
          "decision": {"reasoning": "The lead car (id 3) brakes", "meta_action": {
              "longitudinal": "decelerate", "lateral": "keep_lane"},
              "trajectory_ids": [5, 0, 7]},
          "rewards": {"total": 1.5, "consistency": {"value": 0.0}, "format": {"value": 1.0}}}


@pytest.mark.parametrize(("expression", "expected"), [
    ("parsed == true", True),
    ("parsed == false", False),
    ("not parsed", False),
    ("parsed", True),
    ("kind == grpo and rewards.consistency.value < 0.5", True),
    ("kind == grpo and rewards.consistency.value >= 0.5", False),
    ("kind == rollout or rewards.total > 1", True),
    ("kind == rollout or rewards.total <= 1", False),
    ("decision_correct_lon == false", True),
    ("decision_correct_lat == false", False),
    ("decision_correct_lat == true and not decision_correct_lon", True),
    ("planner == constant-velocity", True),
    ("planner == 'constant-velocity'", True),
    ('planner != "model"', True),
    ("sample_id == 00034-0070", True),
    ("step == 3 and step > 2.5 and step < 4", True),
    ("step == '3'", False),                      # a number is not the text "3"
    ("decision.meta_action == 'decelerate, keep_lane'", True),
    ("decision.meta_action.lateral == keep_lane", True),
    ("decision.trajectory_ids.2 == 7", True),
    ("decision.reasoning contains 'ID 3'", True),
    ("decision.trajectory_ids contains 9", False),
    ("missing.field == null", True),
    ("missing.field != 1", True),
    ("missing.field < 1", False),
    ("kind < 3", False),                         # no ordering between text and number
    ("not (kind == grpo and parsed) or step == 3", True),
    ("kind == rollout or kind == grpo and step == 4", False),   # and binds tighter
    ("(kind == rollout or kind == grpo) and NOT step == 4", True),
])
def test_filter_evaluates(expression, expected):
    assert parse_filter(expression)(RECORD) is expected


@pytest.mark.parametrize(("flags", "failure"), [
    ((True, True), False), ((False, True), True), ((True, False), True), ((None, None), False)])
def test_closed_loop_decision_other_than_the_experts_is_a_failure(flags, failure):
    record = {"kind": "closed_loop", "planner": "constant-velocity", "raw_output": None,
              "parsed": None, "decision": None,
              "derived_meta_action": {"longitudinal": "keep_speed", "lateral": "keep_lane"},
              "expert_meta_action": {"longitudinal": "follow", "lateral": "keep_lane"},
              "decision_correct_lon": flags[0], "decision_correct_lat": flags[1]}
    facts = facts_of(1, record)
    assert facts.verdict == "unknown" and facts.failure is failure
    assert virtual_fields(facts)["failure"] is failure


def test_filter_reaches_derived_fields():
    facts = facts_of(7, RECORD)
    virtual = virtual_fields(facts)
    assert parse_filter("id == 7 and written.longitudinal == decelerate")(RECORD, virtual)
    assert parse_filter("reward == 1.5")(RECORD, virtual)
    assert not parse_filter("id == 8")(RECORD, virtual)


@pytest.mark.parametrize(("expression", "where", "says"), [
    ("parsed ==", "end of input", "expected a value"),
    ("kind = grpo", "column 6", "use =="),
    ("(parsed == true", "end of input", "expected ')'"),
    ("== 3", "column 1", "expected a field name"),
    ("rewards..total > 1", "column 1", "dotted field path"),
    ("kind == 'grpo", "column 9", "unterminated string"),
    ("parsed == true step", "column 16", "expected 'and', 'or'"),
    ("kind == grpo and", "end of input", "expected a field name"),
    ("parsed true", "column 8", "expected an operator"),
    ("__import__('os').system('true') == 0", "column 11", "expected an operator"),
    ("", "end of input", "empty expression"),
    ("kind == grpo; rm", "column 13", "unexpected character"),
])
def test_filter_errors_say_where(expression, where, says):
    with pytest.raises(FilterError) as info:
        parse_filter(expression)
    message = str(info.value)
    assert where in message and says in message, message
    assert "\n" not in message


# -- ls / stats / show on real records --

def test_ls_lists_every_record_with_its_mark(built, capsys):
    code, out, _ = run_cli(capsys, "ls", built.path)
    assert code == 0
    lines = out.splitlines()
    total = sum(built.kinds.values())
    assert len(lines) == total + 2 and lines[-1] == f"{total} of {total} records"
    rows = {int(line.split()[0]): line for line in lines[1:-1]}
    assert all("✓" in rows[i] for i in built.consistent_ids)
    assert all("✗" in rows[i] for i in built.inconsistent_ids)
    assert all(" ! " in rows[i] and "missing_delimiter" in rows[i]
               for i in built.unparsable_ids)
    grpo = [rows[i] for i in built.consistent_ids if " grpo " in rows[i]]
    assert grpo and all(re.search(r"\d\.\d{3}\s*$", r) for r in grpo)   # total reward shown
    # closed loop: ≠ where the decision is not the expert's choice (on either axis)
    steps = record_ids(built, "closed_loop")
    assert "≠" not in rows[steps["ep0@0.0"]] and "≠" not in rows[steps["ep1@0.0"]]
    assert "≠" in rows[steps["ep0@0.5"]] and "≠" in rows[steps["ep0@1.0"]]
    # episodes: the PDMS-like score in the reward column, ✗ for the one with a collision
    episodes = record_ids(built, "closed_loop_episode")
    assert rows[episodes["ep0"]].split()[-3:] == ["✓", "–", "0.900"]
    assert rows[episodes["ep1"]].split()[-3:] == ["✗", "–", "0.000"]


def test_ls_filter_and_limit(built, capsys):
    code, out, _ = run_cli(capsys, "ls", built.path, "--filter",
                           "kind == grpo and rewards.consistency.value < 0.5")
    assert code == 0
    ids = [int(line.split()[0]) for line in out.splitlines()[1:-1]]
    grpo = records_of(built, "grpo")
    low = {i for i, r in grpo.items() if r["rewards"]["consistency"]["value"] < 0.5}
    assert set(ids) == low and len(ids) == len(low)
    # consistency is paid only with correctness, never to an unparsable completion; some
    # completions earn at least half of it, so the filter keeps some records and drops some
    assert set(built.unparsable_ids) & set(grpo) <= low and low != set(grpo)
    code, out, _ = run_cli(capsys, "ls", built.path, "--filter",
                           "decision_correct_lon == false")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and "ep0@0.5" in lines[1] and "≠" in lines[1]
    assert "(1 match 'decision_correct_lon == false')" in lines[-1]
    code, out, _ = run_cli(capsys, "ls", built.path, "--filter",
                           "decision_correct_lat == false", "--limit", "1")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and "ep0@0.5" in lines[1] and "≠" in lines[1]
    assert "(2 match 'decision_correct_lat == false'); --limit 1" in lines[-1]
    code, out, _ = run_cli(capsys, "ls", built.path, "--filter",
                           "kind == closed_loop and failure and verdict == unknown")
    assert code == 0 and len(out.splitlines()) == 2      # the baseline agrees: no failure
    code, out, _ = run_cli(capsys, "ls", built.path, "--filter",
                           "kind == closed_loop and planner == constant-velocity and "
                           "not parsed")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and "ep1@0.0" in lines[1]
    assert "unparsable" not in lines[1]          # a baseline writes no text: not a failure


def test_stats_on_real_records(built, capsys):
    trace = load_trace_file(built.path)
    stats = compute_stats([e.facts for e in trace.entries])
    assert stats["kinds"] == built.kinds
    n = len(built.samples)
    with_text = sum(built.kinds.values()) - built.kinds["closed_loop_episode"] - 1  # baseline
    assert stats["parse_rate"] == pytest.approx(1 - 2 * n / with_text, abs=1e-4)
    # the grpo records: consistency matches the rewards' own consistency component
    grpo = compute_stats([e.facts for e in trace.entries if e.facts.kind == "grpo"])
    assert grpo["consistency"] == pytest.approx(0.5)
    paid = [r["rewards"]["consistency"]["value"] for r in records_of(built, "grpo").values()]
    assert grpo["rewards"]["consistency"] == pytest.approx(np.mean(paid), abs=1e-3)
    assert grpo["rewards"]["format"] == pytest.approx(2 / 3, abs=1e-3)
    episodes = stats["closed_loop_episodes"]
    assert episodes["model"]["collision"] == 0 and episodes["constant-velocity"]["collision"] == 1
    assert episodes["model"]["pdms_like"] == pytest.approx(0.9)
    assert episodes["model"]["decision_accuracy_lon"] == pytest.approx(2 / 3, abs=1e-3)
    assert episodes["model"]["decision_accuracy_lat"] == pytest.approx(1 / 3, abs=1e-3)
    assert episodes["constant-velocity"]["decision_accuracy_lat"] == pytest.approx(1.0)
    # over closed-loop decisions: lon right at 3 of 4, lat at 2 of 4 (the other records
    # carry no flags and do not count)
    assert stats["decision_accuracy_lon"] == pytest.approx(3 / 4)
    assert stats["decision_accuracy_lat"] == pytest.approx(2 / 4)
    only_model = compute_stats([e.facts for e in trace.entries
                                if e.record.get("planner") == "model"])
    assert only_model["decision_accuracy_lon"] == pytest.approx(2 / 3, abs=1e-4)
    assert "decision_accuracy_lon" not in grpo
    code, out, _ = run_cli(capsys, "stats", built.path, "--data", built.data_dir, "--json")
    assert code == 0
    printed = json.loads(out)
    assert printed["kinds"] == built.kinds and printed["per_scenario"]
    code, out, _ = run_cli(capsys, "stats", built.path)
    assert code == 0 and "parsed" in out and "closed-loop episodes" in out
    assert "decision accuracy against the expert's choice" in out
    assert "lon 0.750, lat 0.500" in " ".join(out.split())


def test_show_inconsistent_record_with_cited_agents(built, capsys):
    rid = built.inconsistent_ids[0]
    code, out, _ = run_cli(capsys, "show", built.path, "--id", rid, "--data", built.data_dir)
    assert code == 0
    assert "INCONSISTENT" in out and "lateral: wrote" in out
    assert "written" in out and "derived from trajectory" in out and "label" in out
    assert built.critical_agent is not None
    assert "critical (label)" in out and "✓ named" in out
    code, out, _ = run_cli(capsys, "show", built.path, "--id", built.unparsable_ids[-1])
    assert code == 0 and "UNPARSABLE" in out and "missing_delimiter" in out
    assert "rewards (total" in out                     # the last unparsable one is grpo
    consistent_grpo = [i for i in built.consistent_ids if i > built.inconsistent_ids[0]][0]
    code, out, _ = run_cli(capsys, "show", built.path, "--id", consistent_grpo)
    assert code == 0 and "CONSISTENT" in out and "INCONSISTENT" not in out


def test_show_closed_loop_decision_beside_the_experts_choice(built, capsys):
    steps = record_ids(built, "closed_loop")
    code, out, _ = run_cli(capsys, "show", built.path, "--id", steps["ep0@0.5"])
    assert code == 0 and "written" in out and "expert's choice" in out
    expert_row = next(line for line in out.splitlines() if "expert's choice" in line)
    assert "yield" in expert_row and "lane_change_left" in expert_row
    assert re.search(r"decision_correct_lon\s*│?\s*False", out)
    assert re.search(r"decision_correct_lat\s*│?\s*False", out)
    code, out, _ = run_cli(capsys, "show", built.path, "--id", steps["ep0@1.0"])
    assert code == 0 and re.search(r"decision_correct_lon\s*│?\s*True", out)
    assert re.search(r"decision_correct_lat\s*│?\s*False", out)
    code, out, _ = run_cli(capsys, "show", built.path, "--id", steps["ep1@0.0"])
    assert code == 0 and "no text (a baseline planner)" in out and "expert's choice" in out
    assert re.search(r"decision_correct_lon\s*│?\s*True", out)
    assert re.search(r"decision_correct_lat\s*│?\s*True", out)


def test_reasoning_highlights_critical_and_other_agents():
    text = highlighted_reasoning("The lead car (id 3) brakes; vehicle 5 is far, car 3 too.",
                                 {3})
    styles = {text.plain[s.start:s.end]: str(s.style) for s in text.spans}
    assert styles == {"id 3": CRITICAL_STYLE, "vehicle 5": "underline cyan",
                      "car 3": CRITICAL_STYLE}


# -- bad input: one line, exit code 2 --

def test_bad_input_exits_2_with_one_line(built, tmp_path, capsys):
    cases = []
    code, _, err = run_cli(capsys, "ls", tmp_path / "absent.jsonl")
    cases.append((code, err, "no trace file at"))
    torn = tmp_path / "torn.jsonl"
    good = built.path.read_text().splitlines()
    torn.write_text("\n".join(good[:2]) + "\n" + good[2][:40] + "\n")
    code, _, err = run_cli(capsys, "stats", torn)
    cases.append((code, err, f"{torn}:3"))
    code, _, err = run_cli(capsys, "show", built.path, "--id", 999)
    cases.append((code, err, "no record with id 999"))
    code, _, err = run_cli(capsys, "ls", built.path, "--filter", "parsed = false")
    cases.append((code, err, "column 8"))
    code, _, err = run_cli(capsys, "report", built.path, "--data", tmp_path / "nodata",
                           "--out", tmp_path / "r.html")
    cases.append((code, err, "no data set at"))
    scalar = tmp_path / "scalar.jsonl"
    scalar.write_text('{"kind": "predict"}\n[1, 2]\n')
    code, _, err = run_cli(capsys, "ls", scalar)
    cases.append((code, err, f"{scalar}:2"))
    for code, err, says in cases:
        assert code == 2, err
        assert says in err and err.count("\n") == 1 and "Traceback" not in err, err


# -- the HTML report --

def test_report_is_self_contained_and_flags_mismatches(built, tmp_path, capsys):
    out = tmp_path / "report.html"
    code, printed, _ = run_cli(capsys, "report", built.path, "--data", built.data_dir,
                               "--out", out)
    assert code == 0 and str(out) in printed
    page = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page and not re.search(r"<script[^>]*\bsrc=", page)
    sources = re.findall(r'<img[^>]*\bsrc="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert any(s.startswith("data:image/gif;base64,") for s in sources)   # episode GIF
    total = sum(built.kinds.values())
    assert f'<span id="record-count">{total}</span>' in page

    def row(record_id: int) -> str:
        m = re.search(rf'<tr class="rec[^"]*" data-id="{record_id}".*?</tr>', page, re.S)
        assert m, record_id
        return m.group(0)

    for rid in built.inconsistent_ids:
        assert 'class="flag mismatch"' in row(rid) and 'data-failure="1"' in row(rid)
        assert 'class="axis mismatch"' in row(rid)
    for rid in built.consistent_ids:
        assert "mismatch" not in row(rid) and 'data-failure="0"' in row(rid)
    for rid in built.unparsable_ids:
        assert 'class="flag unparsable"' in row(rid) and "missing_delimiter" in row(rid)
    # each rollout and grpo group plots its 2 parsed completions; the grpo ones (text only)
    # decoded with the codec of the model named by config.json beside the trace file
    assert page.count("2 predicted (dashed: inconsistent)") == 2 * len(built.samples)
    assert '<mark class="agent critical"' in row(built.critical_agent[0])
    # closed loop: the expert's choice beside the decision, flagged where it differs
    steps = record_ids(built, "closed_loop")
    agrees = row(steps["ep0@0.0"])
    assert "expert&#39;s choice: keep_speed, keep_lane" in agrees
    assert '<span class="flag ok">= expert</span>' in agrees and "≠ expert" not in agrees
    baseline = row(steps["ep1@0.0"])             # verdict unknown: only the expert decides
    assert '<span class="flag ok">= expert</span>' in baseline
    assert 'data-failure="0"' in baseline
    for sample_id, wrong in (("ep0@0.5", "longitudinal and lateral"), ("ep0@1.0", "lateral")):
        r = row(steps[sample_id])
        assert f"not the expert&#39;s {wrong} choice" in r and "≠ expert" in r
        assert 'data-failure="1"' in r
    assert "expert&#39;s choice: yield, lane_change_left" in row(steps["ep0@0.5"])


def test_report_caps_groups_and_says_so(built, tmp_path, capsys):
    out = tmp_path / "capped.html"
    code, _, _ = run_cli(capsys, "report", built.path, "--out", out, "--limit", "2",
                         "--filter", "kind == rollout or kind == grpo")
    assert code == 0
    page = out.read_text()
    groups = 2 * len(built.samples)
    assert f"showing the first 2 of {groups} sample groups" in page
    assert page.count('<section class="group"') == 2
    assert "kind == rollout or kind == grpo" in page
