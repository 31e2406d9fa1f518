"""eval/bench_gpu.py on the CPU: its ``main`` in this process on a narrowed shape of each
architecture (Qwen2.5-VL and Qwen3-VL: the structure kept, a few heads wide, our tokenizer's
vocabulary) at one layer, a micro-batch of one accumulated twice and short synthetic inputs,
a few seconds each. It must print every row of its table and write every key of its JSON;
GPU-only measurements (peak memory, the largest batches) are reported as not measured, never
as a number. The largest-batch search is checked on its own with a fake ``fits``."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("stage2", "stage1")
CARDS = ("80GB", "141GB")
LORA_RANK = 64  # train/configs/cosmos_reason1_7b_stage2.yaml


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "eval/bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


# ---- the largest-batch search ---------------------------------------------------------------

@pytest.mark.parametrize("capacity", [0, 1, 2, 3, 5, 7, 8, 9, 15, 20, 100, 1000, 5000])
def test_largest_batch_is_within_an_eighth_of_the_largest_that_fits(bench, capacity):
    probes = []

    def fits(batch):
        probes.append(batch)
        return batch <= capacity

    found = bench.largest_batch(fits, start=8, limit=1024)
    want = min(capacity, 1024)
    assert probes[0] == 8 and all(1 <= b <= 1024 for b in probes)
    assert found <= want
    if want < 16:
        assert found == want  # exact: 0 when not even a batch of 1 fits
    else:
        assert want - found <= found // 8
    assert len(probes) <= 20


def test_largest_batch_bisects_below_a_start_that_does_not_fit(bench):
    probes = []

    def fits(batch):
        probes.append(batch)
        return batch <= 5

    assert bench.largest_batch(fits, start=16, limit=1024) == 5
    assert max(probes) == 16 and all(b < 16 for b in probes[1:])
    assert bench.largest_batch(lambda b: b <= 300, start=64, limit=100) == 100  # capped
    assert bench.largest_batch(lambda b: True, start=64, limit=50) == 50  # start above it
    with pytest.raises(ValueError, match="start and limit must be >= 1"):
        bench.largest_batch(lambda b: True, start=0, limit=8)


# ---- the whole bench, narrowed ----------------------------------------------------------------

def lora_parameters(text: dict, layers: int, rank: int) -> int:
    """LoRA on q/k/v/o_proj: rank x (in + out) per projection, per layer."""
    hidden, head_dim = text["hidden_size"], text["head_dim"]
    query = text["num_attention_heads"] * head_dim
    key_value = text["num_key_value_heads"] * head_dim
    return layers * rank * ((hidden + query) * 2 + (hidden + key_value) * 2)


@pytest.mark.parametrize("shape,source", [("cosmos-reason1-7b", "Qwen2.5-VL"),
                                          ("cosmos-reason2-2b", "Qwen3-VL")])
def test_bench_runs_on_the_cpu_and_reports_every_measure(bench, shape, source, tmp_path,
                                                         capsys, monkeypatch):
    from vla.model.shapes import get_shape

    monkeypatch.setenv("COLUMNS", "200")
    out = tmp_path / "bench.json"
    assert bench.main(["--device", "cpu", "--shape", shape, "--narrow", "--layers", "1",
                       "--batch", "1", "--grad-accum", "2", "--steps", "1", "--warmup", "0",
                       "--decisions", "1", "--dtype", "float32", "--cameras", "1",
                       "--image-size", "64x64", "--prompt-tokens", "24",
                       "--reasoning-tokens", "4", "--max-reasoning-tokens", "4",
                       "--json-out", str(out)]) == 0
    printed = capsys.readouterr().out
    for stage in STAGES:
        for measure in ("batch", "trainable parameters", "seconds per optimizer step",
                        "seconds per sample", "samples/s", "tokens/s", "peak memory"):
            assert f"{stage} {measure}" in printed
        for card in CARDS:
            assert f"{stage} largest batch ({card})" in printed
    for row in ("decision prompt tokens", "decision prefill", "decision reasoning",
                "decision trajectory", "decision total"):
        assert row in printed

    report = json.loads(out.read_text())
    assert {"shape", "source", "narrow", "layers", "vision_depth", "vocab_size", "dtype",
            "device", "parameters", "inputs", "stages", "decision", "seconds"} <= set(report)
    assert report["shape"] == f"{shape}-narrow" and report["narrow"] and report["layers"] == 1
    assert source in report["source"] and report["source"].endswith("narrowed")
    assert report["inputs"] == "synthetic" and report["device"].startswith("CPU")
    for stage in STAGES:
        result = report["stages"][stage]
        assert result["batch"] == 1 and result["grad_accum"] == 2 and result["steps"] == 1
        assert result["samples_per_s"] > 0 and result["tokens_per_s"] > 0
        assert result["seconds_per_sample"] == pytest.approx(result["seconds_per_step"] / 2,
                                                             rel=0.01, abs=1e-4)
        assert result["peak_memory_gib"] is None and result["context_gib"] is None  # no CUDA
        assert result["max_batch"] == dict.fromkeys(CARDS, "not measured")
    # the narrowed widths: rank-64 LoRA on one layer's attention; the injected rows train the
    # input embedding and, when it is not tied to it, the output head
    published = get_shape(shape)
    text = dict(bench.narrow_shape(published, 64).text)
    text.setdefault("head_dim", text["hidden_size"] // text["num_attention_heads"])
    assert text["head_dim"] == 128 and text["num_key_value_heads"] == 1
    assert report["stages"]["stage2"]["trainable_parameters"] == lora_parameters(text, 1,
                                                                                 LORA_RANK)
    matrices = 1 if published.tie_word_embeddings else 2
    assert (report["stages"]["stage1"]["trainable_parameters"]
            == matrices * report["vocab_size"] * text["hidden_size"])
    decision = report["decision"]
    assert decision["reasoning_tokens"] == 4 + 1  # held to the grammar's bound, then its end
    assert decision["trajectory_tokens"] == 12 + 1  # the codec's tokens, then their end
    assert decision["prefill_ms"] > 0 and decision["decision_ms"] >= decision["prefill_ms"]
