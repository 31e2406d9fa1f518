"""`vla demo` end to end at a minute scale: every stage really runs (simulator, training, a real
vLLM server, GRPO through it, both evaluations, the report), the summary holds the keys users
read, a re-run reuses everything without a server, and a missing stage output is redone alone."""

import json
import re

import pytest
import torch
from rich.console import Console

from vla.demo import DemoConfig, run_demo, torch_threads

SUMMARY_KEYS = {"parse_rate", "decision_accuracy", "consistency_sft", "consistency_grpo",
                "ade_3s_model", "ade_3s_constant_velocity", "closed_loop", "stage_seconds",
                "report", "decision_accuracy_blind_prior", "decision_accuracy_blind_learned",
                "consistency_blind_constant", "correct_and_consistent"}
STAGES = ["data", "model", "stage1", "stage2", "serve", "grpo", "open_loop", "closed_loop",
          "report"]
SERVED = ("serve", "grpo", "open_loop", "closed_loop")
PLANNERS = {"model", "expert", "expert-tracked", "damped-prior", "constant-velocity"}


def _run(config: DemoConfig) -> tuple[dict, str]:
    console = Console(record=True, width=200)
    summary = run_demo(config, console)
    return summary, console.export_text()


def test_demo_runs_resumes_and_redoes_only_what_is_missing(tmp_path):
    config = DemoConfig(out=tmp_path / "demo", episodes=5, workers=1, grpo_steps=1,
                        eval_samples=4, open_loop_samples=4, open_loop_k=2,
                        closed_loop_episodes=1, stage1_steps=2, stage2_steps=2)
    threads = torch.get_num_threads()
    first, text = _run(config)
    assert torch.get_num_threads() == threads  # stages 1 and 2 used their own, then gave back
    assert set(first) >= SUMMARY_KEYS
    assert list(first["stage_seconds"]) == STAGES
    assert all(seconds > 0 for seconds in first["stage_seconds"].values())
    assert 0.0 <= first["parse_rate"] <= 1.0
    assert set(first["decision_accuracy"]) == {"longitudinal", "lateral"}
    assert set(first["decision_accuracy_blind_learned"]) == {"longitudinal", "lateral"}
    assert first["consistency_blind_prior"] == 1.0  # the blind row the table must show
    assert "blind-learned" in re.sub(r"\s+", " ", text)
    assert set(first["closed_loop"]) == PLANNERS
    for metrics in first["closed_loop"].values():
        assert metrics["collision_rate"] in (0.0, 1.0) and 0.0 <= metrics["pdms_like"] <= 1.0
        lo, hi = metrics["collision_rate_ci95"]
        assert lo <= metrics["collision_rate"] <= hi
    # the model and the baselines are scored on the first test samples of the built data
    test_samples = first["data"]["split_samples"]["test"]
    assert first["open_loop"]["samples"] == min(config.open_loop_samples, test_samples) > 0
    assert first["ade_3s_constant_velocity"] > 0
    report = tmp_path / "demo" / "report.html"
    assert first["report"] == str(report) and report.stat().st_size > 10_000
    on_disk = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert on_disk["consistency_grpo"] == first["consistency_grpo"]

    # re-run at once: every stage reused, no server started, the same results
    server_log = tmp_path / "demo" / "logs" / "vllm_server.log"
    log_size = server_log.stat().st_size
    again, text = _run(config)
    for stage in SERVED:
        assert re.search(rf"✓ {stage}\s+[0-9.]+ s  reused", text), stage
    assert server_log.stat().st_size == log_size
    assert again["stage_seconds_when_built"] == first["stage_seconds_when_built"]
    for key in SUMMARY_KEYS - {"stage_seconds"}:
        assert again[key] == first[key], key

    # a lost closed-loop result is redone alone: the server comes back, GRPO is not rerun
    (tmp_path / "demo" / "eval" / "closed_loop.json").unlink()
    grpo_log = (tmp_path / "demo" / "grpo" / "grpo_log.jsonl").read_text()
    third, text = _run(config)
    assert "reused" not in re.search(r"✓ closed_loop.*", text).group(0)
    assert re.search(r"✓ open_loop\s+[0-9.]+ s", text)
    assert (tmp_path / "demo" / "grpo" / "grpo_log.jsonl").read_text() == grpo_log
    assert re.search(r"✓ report\s+[0-9.]+ s  wrote", text)  # from the new closed-loop traces
    redone = ("serve", "closed_loop", "report")
    built = third["stage_seconds_when_built"]
    assert {k: v for k, v in built.items() if k not in redone} == \
        {k: v for k, v in first["stage_seconds_when_built"].items() if k not in redone}
    assert set(third["closed_loop"]) == PLANNERS


def test_demo_config_refuses_bad_values_and_training_threads_are_given_back():
    with pytest.raises(ValueError, match="train_threads must be >= 1"):
        DemoConfig(train_threads=0)
    with pytest.raises(ValueError, match="episodes must be >= 3"):
        DemoConfig(episodes=2)
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"), torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
