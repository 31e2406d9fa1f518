"""eval/bench_gpu.py on the CPU: the smallest exact shape at one layer, a batch of one and short
synthetic inputs, so that it runs in about a minute. It must print every row of its table and
write every key of its JSON; GPU-only measurements (peak memory, the largest batches) are
reported as not measured, never as a number."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("stage2", "stage1")
CARDS = ("80GB", "141GB")


def test_bench_gpu_runs_on_the_cpu_and_reports_every_measure(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "eval/bench_gpu.py"), "--device", "cpu",
           "--shape", "cosmos-reason2-2b", "--layers", "1", "--batch", "1", "--steps", "1",
           "--warmup", "0", "--decisions", "1", "--dtype", "float32", "--cameras", "1",
           "--image-size", "64x64", "--prompt-tokens", "24", "--reasoning-tokens", "4",
           "--max-reasoning-tokens", "4", "--json-out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 0, run.stderr[-3000:]
    for stage in STAGES:
        for measure in ("batch", "trainable parameters", "samples/s", "tokens/s", "peak memory"):
            assert f"{stage} {measure}" in run.stdout
        for card in CARDS:
            assert f"{stage} largest batch ({card})" in run.stdout
    for row in ("decision prompt tokens", "decision prefill", "decision reasoning",
                "decision trajectory", "decision total"):
        assert row in run.stdout

    report = json.loads(out.read_text())
    assert {"shape", "source", "layers", "vision_depth", "vocab_size", "dtype", "device",
            "parameters", "inputs", "stages", "decision", "seconds"} <= set(report)
    assert report["shape"] == "cosmos-reason2-2b" and report["layers"] == 1
    assert report["inputs"] == "synthetic" and report["device"].startswith("CPU")
    for stage in STAGES:
        result = report["stages"][stage]
        assert result["batch"] == 1 and result["steps"] == 1
        assert result["samples_per_s"] > 0 and result["tokens_per_s"] > 0
        assert result["peak_memory_gib"] is None  # no CUDA: not measured
        assert result["max_batch"] == dict.fromkeys(CARDS, "not measured")
    # rank-64 LoRA on one layer's attention; the injected rows train the tied embedding
    assert report["stages"]["stage2"]["trainable_parameters"] == 917_504
    assert report["stages"]["stage1"]["trainable_parameters"] == report["vocab_size"] * 2048
    decision = report["decision"]
    assert decision["reasoning_tokens"] == 4 + 1  # the grammar's bound, then its end
    assert decision["trajectory_tokens"] == 12 + 1  # the codec's tokens, then their end
    assert decision["prefill_ms"] > 0 and decision["decision_ms"] >= decision["prefill_ms"]
