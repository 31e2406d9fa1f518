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
README_SUMMARY = ROOT / "docs" / "results" / "2026-11-30-demo-summary-camera-rig.json"
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


WITH_IMAGES_AND_EVENTS = {
    **SUMMARY,
    "decision_accuracy_images_blanked": {"longitudinal": 0.2941, "lateral": 0.6667},
    "consistency_images_blanked": 0.7451,
    "correct_and_consistent_images_blanked": 0.2157,
    "decision_accuracy_images_shuffled": {"longitudinal": 0.2745, "lateral": 0.6569},
    "decision_accuracy_events": {"longitudinal": 0.25, "lateral": 0.6},
    "decision_accuracy_events_blind_prior": {"longitudinal": 0.3, "lateral": 0.65},
    "decision_accuracy_events_images_blanked": {"longitudinal": 0.2, "lateral": 0.6},
    "decision_accuracy_free": {"longitudinal": 0.35, "lateral": 0.7},
    "open_loop": {**SUMMARY["open_loop"],
                  "image_diagnostics": {"images_blanked": {"l2_avg_3s": 1.9}},
                  "subsets": {"events": {"samples": 60}, "free": {"samples": 42}}},
}


def test_image_diagnostic_rows_and_the_event_table_render_when_the_summary_has_them():
    text = render_results(WITH_IMAGES_AND_EVENTS)
    assert text.startswith(EXPECTED.split("| SFT model")[0])  # header, columns, model row
    assert ("| GRPO model (greedy) | 0.284 / 0.667 | 0.765 | 0.226 | 1.845 | "
            "0.324 [0.13, 0.53] | 0.500 |\n"
            "| GRPO model, images blanked | 0.294 / 0.667 | 0.745 | 0.216 | 1.900 | – | – |\n"
            "| GRPO model, images shuffled | 0.275 / 0.657 | – | – | – | – | – |\n"
            "| SFT model (stage 2) |") in text
    assert text.endswith(
        "\n\nEvent samples (a vehicle brakes, cuts in, stands still or has right of way) "
        "beside free driving, on the same open-loop test samples (how many in parentheses):\n"
        "\n"
        "|  | event samples: decision acc. lon / lat (60) | "
        "free driving: decision acc. lon / lat (42) |\n"
        "|---|---|---|\n"
        "| GRPO model (greedy) | 0.250 / 0.600 | 0.350 / 0.700 |\n"
        "| GRPO model, images blanked | 0.200 / 0.600 | – |\n"
        "| blind-prior | 0.300 / 0.650 | – |\n")
    assert "Event samples" not in render_results(SUMMARY)  # an older summary: no second table
    assert "images blanked" in render_report(WITH_IMAGES_AND_EVENTS)


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


def _open_loop_result(refs: dict, images: dict | None, subsets: dict | None) -> dict:
    """An open-loop result as :func:`vla.evaluation.open_loop.evaluate_open_loop` writes it,
    with or without the image diagnostics and the subsets."""
    row = {"accuracy_lon": 0.5, "accuracy_lat": 0.5, "consistency": 0.5,
           "correct_and_consistent": 0.25, "l2_avg_3s": 1.0, "parsed": 1.0}
    out = {"samples": 4, "k": 2, "temperature": 0.5, "model": row,
           "model_mean_k": {"l2_avg_3s": 1.0}, "references": refs,
           "baselines": {name: {"l2_avg_3s": 1.0} for name in (
               "constant-velocity", "constant-acceleration", "damped-acceleration", "expert")}}
    if images is not None:
        out["image_diagnostics"] = {name: {**row, **m} for name, m in images.items()}
    if subsets is not None:
        out["subsets"] = subsets
    return out


def test_demo_summary_holds_the_image_diagnostics_and_the_event_accuracy():
    from vla.demo import _headline_numbers

    row = {"accuracy_lon": 0.5, "accuracy_lat": 0.75, "consistency": 1.0,
           "correct_and_consistent": 0.5, "l2_avg_3s": 1.2, "parsed": 1.0}
    refs = {"blind-prior": row, "blind-learned": {**row, "accuracy_lon": 0.6}}
    images = {"images_blanked": {"accuracy_lon": 0.1}, "images_shuffled": {"accuracy_lon": 0.2}}
    subsets = {"events": {"samples": 3, "model": {**row, "accuracy_lon": 1 / 3},
                          "references": refs,
                          "image_diagnostics": {"images_blanked": {**row, "accuracy_lon": 0.0},
                                                "images_shuffled": row}},
               "free": {"samples": 1, "model": row, "references": refs,
                        "image_diagnostics": {"images_blanked": row, "images_shuffled": {}}}}
    closed = {"planners": {"model": {"episodes": 2, "pdms_like": 0.5}}}
    old = _headline_numbers({"consistency": 0.5}, _open_loop_result(refs, None, None), closed)
    new = _headline_numbers({"consistency": 0.5}, _open_loop_result(refs, images, subsets),
                            closed)
    assert all(new[k] == v for k, v in old.items() if k != "open_loop")  # old keys unchanged
    assert new["decision_accuracy_images_blanked"] == {"longitudinal": 0.1, "lateral": 0.5}
    assert new["decision_accuracy_images_shuffled"]["longitudinal"] == 0.2
    assert new["decision_accuracy_events"] == {"longitudinal": 1 / 3, "lateral": 0.75}
    assert new["decision_accuracy_events_blind_prior"]["longitudinal"] == 0.5
    assert new["decision_accuracy_events_blind_learned"]["longitudinal"] == 0.6
    assert new["decision_accuracy_events_images_blanked"]["longitudinal"] == 0.0
    assert new["decision_accuracy_events_images_shuffled"]["longitudinal"] == 0.5
    assert "decision_accuracy_free_images_shuffled" not in new  # no sample had a partner
    assert new["open_loop"]["subsets"] == subsets
    assert not any(k.startswith(("decision_accuracy_events", "decision_accuracy_images"))
                   for k in old)
    text = render_results({**new, "scale": "tiny"})
    assert "| GRPO model, images blanked | 0.100 / 0.500 |" in text
    assert "| GRPO model (greedy) | 0.333 / 0.750 | 0.500 / 0.750 |" in text  # events, free
