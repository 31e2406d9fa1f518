"""The demo's Markdown results table, and the README's copy of it."""

import json
from pathlib import Path

import pytest

from vla.demo_report import (
    RESULTS_BEGIN,
    RESULTS_END,
    main,
    readme_block,
    render_report,
    render_results,
    replace_readme_block,
)

ROOT = Path(__file__).resolve().parents[1]
README_SUMMARY = ROOT / "docs" / "results" / "2026-11-30-demo-summary-idm-reset.json"
"""The demo summary the README's results block is generated from."""

SUMMARY = {
    "scale": "tiny",
    "data": {"samples": 1131, "episodes_kept": 55,
             "split_samples": {"train": 760, "validation": 187, "test": 184}},
    "parse_rate": 1.0,
    "validation_samples": 102,
    "decision_accuracy": {"longitudinal": 0.2843, "lateral": 0.6667},
    "decision_accuracy_blind_constant": {"longitudinal": 0.2745, "lateral": 0.6667},
    "decision_accuracy_blind_learned": {"longitudinal": 0.4804, "lateral": 0.6176},
    "consistency_sft": 0.7059,
    "consistency_grpo": 0.7647,
    "consistency_blind_constant": 0.7647,
    "correct_and_consistent": 0.2255,
    "ade_3s_model": 1.8453,
    "ade_3s_constant_velocity": 1.8063,
    "ade_3s_damped_acceleration": 1.8453,
    "open_loop": {"references": {"blind-constant": {"l2_avg_3s": 1.8453}},
                  "baselines": {"expert": {"l2_avg_3s": 0.0}}},
    "closed_loop": {
        "expert": {"episodes": 18, "pdms_like": 0.8518, "pdms_like_ci95": [0.7685, 0.9259],
                   "off_road_rate": 0.0, "off_road_rate_ci95": [0.0, 0.0]},
        "model": {"episodes": 18, "pdms_like": 0.324, "pdms_like_ci95": [0.1342, 0.5326],
                  "off_road_rate": 0.5},
    },
}

EXPECTED = """\
`tiny` preset; data: 55 episodes kept, 1,131 samples (760 train / 187 validation / 184 test); \
open loop: 102 test samples (stratified by scenario), GRPO parse rate 1.000; closed loop: 18 \
episodes of `eval/scenarios/demo.yaml`, 95 % bootstrap intervals over episodes.

|  | decision acc. lon / lat | consistency | correct & consistent | ADE@3 s (m) | \
closed-loop PDMS-like [95 % CI] | closed-loop off-road rate [95 % CI] |
|---|---|---|---|---|---|---|
| GRPO model (greedy) | 0.284 / 0.667 | 0.765 | 0.226 | 1.845 | 0.324 [0.13, 0.53] | 0.500 |
| SFT model (stage 2) | – | 0.706 | – | – | – | – |
| blind-constant | 0.275 / 0.667 | 0.765 | – | 1.845 | – | – |
| blind-prior | – | – | – | – | – | – |
| blind-learned | 0.480 / 0.618 | – | – | – | – | – |
| constant velocity | – | – | – | 1.806 | – | – |
| damped prior (under the trajectory tokens) | – | – | – | 1.845 | – | – |
| expert | – | – | – | 0.000 | 0.852 [0.77, 0.93] | 0.000 [0.00, 0.00] |
"""


def test_render_results_gives_the_expected_table():
    assert render_results(SUMMARY) == EXPECTED


def test_missing_keys_render_a_dash_and_optional_rows_are_left_out():
    text = render_results({"scale": "tiny"})
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| GRPO model (greedy)", "| blind-constant", "| blind-prior", "| blind-learned",
        "| constant velocity", "| damped prior (under the trajectory tokens)", "| expert"]
    for row in rows:
        assert set(row.strip("| ").split(" | ")[1:]) == {"–"}


def test_report_page_holds_the_results_block():
    page = render_report(SUMMARY)
    assert page.startswith("# vla demo: results\n")
    assert render_results(SUMMARY) in page


def test_readme_block_is_replaced_and_read_back():
    text = f"intro\n{RESULTS_BEGIN}\nold table\n{RESULTS_END}\noutro\n"
    new = replace_readme_block(text, SUMMARY)
    assert readme_block(new) == render_results(SUMMARY)
    assert new.startswith("intro\n") and new.endswith(f"{RESULTS_END}\noutro\n")


def test_readme_without_markers_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="no results block"):
        replace_readme_block("no markers here\n", SUMMARY, "X.md")


def test_command_rewrites_a_readme_and_reports_a_bad_summary(tmp_path, capsys):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(SUMMARY))
    readme = tmp_path / "README.md"
    readme.write_text(f"{RESULTS_BEGIN}\n{RESULTS_END}\n")
    assert main([str(summary), "--readme", str(readme)]) == 0
    assert readme_block(readme.read_text()) == render_results(SUMMARY)
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "no such summary file" in capsys.readouterr().err


def test_readme_results_table_matches_the_summary_it_quotes():
    """README.md's results block is the generated table of README_SUMMARY, character for
    character; after a new demo run, regenerate it with
    ``python -m vla.demo_report SUMMARY --readme README.md``."""
    summary = json.loads(README_SUMMARY.read_text())
    readme = (ROOT / "README.md").read_text()
    assert readme_block(readme) == render_results(summary), (
        f"README.md's results block differs from the table generated from "
        f"{README_SUMMARY.relative_to(ROOT)}; regenerate it with `python -m vla.demo_report "
        f"{README_SUMMARY.relative_to(ROOT)} --readme README.md`")
