"""`vla demo` end to end at a minute scale: every stage really runs (simulator, training, a real
vLLM server, GRPO through it, both evaluations, the report), the summary holds the keys users
read, a re-run reuses everything without a server, and a missing stage output is redone alone.
The first run is the `vla` of a fresh, non-editable install, started outside the checkout."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

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


CHECKOUT = Path(__file__).resolve().parents[1]
# what `pip install .` reads: the package and the folders pyproject.toml installs into it
PACKAGE_SOURCES = ("pyproject.toml", "README.md", "vla", "prompts", "data_recipes", "serve",
                   "eval/scenarios", "train/configs")


def _run(config: DemoConfig) -> tuple[dict, str]:
    console = Console(record=True, width=200)
    summary = run_demo(config, console)
    return summary, console.export_text()


def _fresh_install(root: Path) -> Path:
    """A new virtual environment under ``root`` with vla installed from a copy of the checkout
    by a plain, non-editable ``pip install``; returns its folder.

    The heavy stack (torch, vLLM, ...) is this environment's: its site-packages joins the new
    one's path through a .pth path line, which runs none of that folder's own .pth files (so
    its editable vla stays out); the CPU profile's torchvision hook is copied in.
    """
    source = root / "source"
    for name in PACKAGE_SOURCES:
        src, dst = CHECKOUT / name, source / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    stack = Path(sysconfig.get_paths()["purelib"])
    (site / "vla_stack.pth").write_text(f"{stack}\n")
    for hook in stack.glob("vla_torchvision_ops_hook.*"):  # the CPU profile's fix 1
        shutil.copy2(hook, site)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--no-index", "--no-cache-dir",
                    "--disable-pip-version-check", str(source)],
                   check=True, cwd=root, capture_output=True, text=True)
    return venv


def _installed_modules(package_dir: Path) -> set[str]:
    return {str(p.relative_to(package_dir)) for p in package_dir.rglob("*.py")
            if "__pycache__" not in p.parts and "assets" not in p.parts}


@pytest.mark.e2e
def test_demo_runs_resumes_and_redoes_only_what_is_missing(tmp_path):
    config = DemoConfig(out=tmp_path / "demo", episodes=5, workers=1, grpo_steps=1,
                        eval_samples=4, open_loop_samples=4, open_loop_k=2,
                        closed_loop_episodes=1, stage1_steps=2, stage2_steps=2)
    # the first run: `vla demo` of a fresh non-editable install, from a folder outside the checkout
    venv = _fresh_install(tmp_path / "install")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import vla; print(vla.__file__)"],
                           cwd=elsewhere, check=True, capture_output=True, text=True).stdout
    installed = Path(where.strip()).parent
    assert installed.is_relative_to(venv), installed  # not the checkout's editable vla
    assert _installed_modules(CHECKOUT / "vla") <= _installed_modules(installed)
    run = subprocess.run(
        [str(venv / "bin" / "vla"), "demo", "--out", str(config.out),
         "--episodes", str(config.episodes), "--stage1-steps", str(config.stage1_steps),
         "--stage2-steps", str(config.stage2_steps), "--grpo-steps", str(config.grpo_steps),
         "--workers", str(config.workers), "--eval-samples", str(config.eval_samples),
         "--open-loop-samples", str(config.open_loop_samples),
         "--open-loop-k", str(config.open_loop_k),
         "--closed-loop-episodes", str(config.closed_loop_episodes)],
        cwd=elsewhere, capture_output=True, text=True, timeout=1200,
        env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    first, text = json.loads((config.out / "summary.json").read_text()), run.stdout
    assert not list(elsewhere.iterdir())  # nothing written beside the working directory
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
    threads = torch.get_num_threads()
    again, text = _run(config)
    assert torch.get_num_threads() == threads  # stages 1 and 2 used their own, then gave back
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
