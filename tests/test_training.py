"""Training stages under `accelerate launch`: resume after SIGKILL, LoRA + merge, ZeRO-2/3."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TORCH_EXTENSIONS_DIR=str(Path(sys.prefix) / "torch_extensions"))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _launch(config, script, overrides, **popen):
    cmd = [ACCELERATE, "launch", "--config_file", str(ROOT / "train/accelerate" / config),
           str(ROOT / "train" / script), *overrides]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            **popen)


def _run(config, script, overrides, timeout=600):
    proc = _launch(config, script, overrides)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _log_steps(out_dir):
    return [r["step"] for r in map(json.loads, (out_dir / "train_log.jsonl").read_text()
                                   .splitlines()) if "loss" in r]


def test_run_config_from_yaml_and_overrides(tmp_path):
    from vla.training.config import load_run_config

    path = tmp_path / "run.yaml"
    path.write_text("stage: sft\nmodel: m\ndata: d\nout: o\nmax_steps: 7\n")
    config = load_run_config(path, ["max_steps=9", "blank_images=true", "learning_rate=2e-4"],
                             stage="sft")
    assert (config.max_steps, config.blank_images, config.learning_rate) == (9, True, 2e-4)
    assert config.final_dir == Path("o/adapter")
    with pytest.raises(ValueError, match="unknown config key 'max_step'"):
        load_run_config(path, ["max_step=3"])
    with pytest.raises(ValueError, match="expected int"):
        load_run_config(path, ["max_steps=many"])
    with pytest.raises(ValueError, match="this entry point runs stage='inject'"):
        load_run_config(path, [], stage="inject")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        load_run_config(path, ["batch_size=0"])
    with pytest.raises(ValueError, match="trajectory decoding must be one of"):
        load_run_config(path, ["trajectory_decoding=beam"])
    with pytest.raises(ValueError, match="trajectory_loss_weight must be > 0"):
        load_run_config(path, ["trajectory_loss_weight=0"])
    path.write_text("stage: sft\nmodel: m\nout: o\nwarmup: 3\n")
    with pytest.raises(ValueError, match=r"unknown keys \['warmup'\]"):
        load_run_config(path)


def test_span_loss_equals_the_model_loss_and_splits_it(tiny_model_dir, small_data_dir):
    from transformers import TrainingArguments

    from vla.data.build import load_dataset_dir
    from vla.model.collator import Collator
    from vla.model.constraints import GrammarIds
    from vla.model.loading import load_model_dir
    from vla.training.span_trainer import SpanLossTrainer

    loaded = load_model_dir(tiny_model_dir)
    dataset, _ = load_dataset_dir(small_data_dir)
    batch = Collator(loaded.processor, loaded.codec)([dataset["train"][i] for i in range(3)])
    expected = loaded.model(**{k: v for k, v in batch.items() if k != "span_ids"}).loss
    traj = GrammarIds.from_tokenizer(loaded.tokenizer, loaded.codec.vocab_size).traj_ids
    trainer = SpanLossTrainer(model=loaded.model, args=TrainingArguments(
        output_dir=str(small_data_dir.parent / "unused"), use_cpu=True, report_to=[]),
        trajectory_token_ids=traj)
    loaded.model.train()
    loss = trainer.compute_loss(loaded.model, dict(batch))
    assert abs(float(loss.detach()) - float(expected.detach())) < 1e-5
    logs = {"loss": float(loss.detach())}
    trainer.log(logs)
    assert set(logs) >= {"loss_reasoning", "loss_meta_action", "loss_trajectory",
                         "traj_token_accuracy"}
    assert all(np.isfinite(logs[k]) and logs[k] > 0 for k in
               ("loss_reasoning", "loss_meta_action", "loss_trajectory"))
    # a trajectory weight w: the mean over tokens with each trajectory-span token counted w
    # times, recomputed from the span means and the span token counts
    from vla.model.collator import IGNORE, SPANS

    spans, labels = batch["span_ids"][:, 1:], batch["labels"][:, 1:]
    counts = {name: int(((spans == sid) & (labels != IGNORE)).sum())
              for name, sid in SPANS.items()}
    weighted = SpanLossTrainer(model=loaded.model, args=trainer.args, trajectory_token_ids=traj,
                               trajectory_loss_weight=4.0)
    loss4 = float(weighted.compute_loss(loaded.model, dict(batch)).detach())
    logs4 = {"loss": loss4}
    weighted.log(logs4)
    w = {"reasoning": 1.0, "meta_action": 1.0, "trajectory": 4.0}
    want = (sum(w[n] * counts[n] * logs4[f"loss_{n}"] for n in w)
            / sum(w[n] * counts[n] for n in w))
    assert abs(loss4 - want) < 1e-3 * want
    assert abs(loss4 - float(loss.detach())) > 1e-3  # the weight changed the loss


def test_new_rows_scope_moves_only_the_injected_rows(tiny_model_dir, small_data_dir):
    import torch

    from vla.data.build import load_dataset_dir
    from vla.model.collator import Collator
    from vla.model.loading import load_model_dir
    from vla.training.run import _restrict_to_new_rows

    loaded = load_model_dir(tiny_model_dir)
    model = loaded.model
    first_new = 1000
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _restrict_to_new_rows(model, first_new)
    dataset, _ = load_dataset_dir(small_data_dir)
    batch = Collator(loaded.processor, loaded.codec)([dataset["train"][0]])
    batch.pop("span_ids")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2,
                            weight_decay=0.0)
    model.train()
    model(**batch).loss.backward()
    opt.step()
    emb_name = next(n for n, p in model.named_parameters() if p is
                    model.get_input_embeddings().weight)
    head_name = next(n for n, p in model.named_parameters() if p is
                     model.get_output_embeddings().weight)
    for name, param in model.named_parameters():
        if name in (emb_name, head_name):
            assert torch.equal(param[:first_new], before[name][:first_new]), name
            assert not torch.equal(param[first_new:], before[name][first_new:]), name
        else:
            assert torch.equal(param, before[name]), name


distributed = pytest.mark.distributed  # under `accelerate launch`


@pytest.fixture(scope="module")
def stage1(tiny_model_dir, small_data_dir, tmp_path_factory):
    """Stage 1 for 8 steps, killed with SIGKILL after its step-4 checkpoint, then resumed."""
    out = tmp_path_factory.mktemp("stage1")
    overrides = ["--config", str(ROOT / "train/configs/tiny_stage1.yaml"),
                 f"model={tiny_model_dir}", f"data={small_data_dir}", f"out={out}",
                 "max_steps=8", "save_steps=2", "logging_steps=1", "batch_size=2",
                 "eval_samples=3", "max_reasoning_tokens=16"]
    proc = _launch("cpu.yaml", "stage1_inject.py", overrides)
    deadline = time.time() + 300
    while not (out / "checkpoints/checkpoint-4/trainer_state.json").is_file():
        assert proc.poll() is None, proc.stdout.read()[-4000:]
        assert time.time() < deadline, "no checkpoint-4 within 300 s"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "result.json").exists()
    first_log = _log_steps(out)
    second = _run("cpu.yaml", "stage1_inject.py", overrides)
    return out, first_log, second


@distributed
def test_sigkilled_run_resumes_to_the_same_step_count(stage1):
    out, first_log, second = stage1
    resumed_from = int(second.split("resuming from ")[1].split("checkpoint-")[1].split()[0])
    assert resumed_from >= 4
    assert first_log[:resumed_from] == list(range(1, resumed_from + 1))
    assert _log_steps(out) == list(range(1, 9))  # every step once, none repeated
    result = json.loads((out / "result.json").read_text())
    assert result["global_step"] == 8
    state = json.loads((out / "checkpoints/checkpoint-8/trainer_state.json").read_text())
    assert state["global_step"] == 8
    assert (out / "curves.png").stat().st_size > 1000
    val = result["validation"]
    assert val["samples"] == 3 and 0.0 <= val["model"]["parse_rate"] <= 1.0
    assert val["baselines"]["constant-velocity"]["l2_avg_3s"] > 0
    assert set(val["references"]) == {"blind-constant", "blind-prior", "blind-learned"}
    # the same command once more: nothing to do
    again = _run("cpu.yaml", "stage1_inject.py", ["--config",
                 str(ROOT / "train/configs/tiny_stage1.yaml"), *second_overrides(out, stage1)])
    assert "already done, reused" in " ".join(again.split())  # the console wraps long paths


def second_overrides(out, stage1):
    config = json.loads((out / "result.json").read_text())["config"]
    keys = ("model", "data", "out", "max_steps", "save_steps", "logging_steps", "batch_size",
            "eval_samples", "max_reasoning_tokens")
    return [f"{k}={config[k]}" for k in keys]


@distributed
def test_lora_sft_then_merge_in_its_own_process(stage1, small_data_dir, tmp_path):
    import torch

    from vla.model.loading import load_model_dir

    base = stage1[0] / "model"
    out = tmp_path / "stage2"
    _run("cpu.yaml", "stage2_sft.py", [
        "--config", str(ROOT / "train/configs/tiny_stage2.yaml"), f"model={base}",
        f"data={small_data_dir}", f"out={out}", "max_steps=3", "batch_size=2",
        "eval_samples=2", "max_reasoning_tokens=16", "learning_rate=0.01"])
    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert json.loads((out / "result.json").read_text())["global_step"] == 3
    merged = tmp_path / "merged"
    subprocess.run([str(Path(sys.executable).with_name("vla")), "model", "merge", "--base",
                    str(base), "--adapter", str(adapter), "--out", str(merged)],
                   check=True, env=_env(), cwd=ROOT)
    from peft import PeftModel

    base_loaded = load_model_dir(base)
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    plain = base_loaded.model(input_ids=ids).logits
    with_adapter = PeftModel.from_pretrained(base_loaded.model, str(adapter))(input_ids=ids).logits
    merged_logits = load_model_dir(merged).model(input_ids=ids).logits
    assert (with_adapter - plain).abs().max() > 1e-4  # the adapter learned something
    assert torch.allclose(merged_logits, with_adapter, atol=1e-4)


@distributed
@pytest.mark.parametrize("launch", ["cpu_2proc", "zero2", "zero3"])
def test_two_process_runs(launch, tiny_model_dir, small_data_dir, tmp_path):
    """Two processes: DDP over gloo, DeepSpeed ZeRO-2 and ZeRO-3 (on the CPU here)."""
    from vla.model.loading import load_model_dir

    out = tmp_path / launch
    log = _run(f"{launch}.yaml", "stage1_inject.py", [
        "--config", str(ROOT / "train/configs/tiny_stage1.yaml"), f"model={tiny_model_dir}",
        f"data={small_data_dir}", f"out={out}", "max_steps=3", "save_steps=3",
        "batch_size=1", "logging_steps=1", "eval_samples=0"], timeout=900)
    result = json.loads((out / "result.json").read_text())
    assert result["global_step"] == 3, log[-3000:]
    checkpoint = out / "checkpoints/checkpoint-3"
    assert (checkpoint / "rng_state_0.pth").is_file() and (checkpoint / "rng_state_1.pth").is_file()
    if launch.startswith("zero"):
        shards = checkpoint / "global_step3"  # DeepSpeed's own layout
        for rank in (0, 1):  # optimiser state split between the two processes
            assert (shards / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").is_file()
    trained = load_model_dir(out / "model").model.state_dict()
    initial = load_model_dir(tiny_model_dir).model.state_dict()
    changed = [k for k in initial if not np.allclose(trained[k].numpy(), initial[k].numpy())]
    assert len(changed) > len(initial) // 2  # full fine-tuning moved most tensors


def test_the_validation_table_labels_each_run_and_refuses_mixed_samples(tmp_path):
    from vla.training.report import markdown_table
    from vla.training.run import RESULT_FILE

    metrics = {"parse_rate": 1.0, "l2_avg_3s": 1.5}
    references = {"blind-prior": {"parse_rate": 1.0, "consistency": 1.0, "l2_avg_3s": 1.6}}
    baselines = {"constant-velocity": {"l2_avg_3s": 1.7}}

    def run(name, samples=200, **config):
        folder = tmp_path / name
        folder.mkdir()
        (folder / RESULT_FILE).write_text(json.dumps({
            "global_step": 40, "config": {"stage": "sft", "blank_images": False, **config},
            "validation": {"split": "test", "samples": samples, "model": metrics,
                           "references": references, "baselines": baselines}}))
        return folder

    table = markdown_table([run("greedy"), run("expected", trajectory_decoding="expected"),
                            run("blank", blank_images=True)])
    rows = table.splitlines()
    assert rows[2] == "| greedy (sft, 40 steps) | 1.000 | – | – | – | – | 1.500 | – | – | – |"
    assert rows[3].startswith("| expected (sft, 40 steps, expected-entry trajectory) |")
    assert rows[4].startswith("| blank (sft, 40 steps, blank images) |")
    assert rows[5] == "| blind-prior | 1.000 | – | – | 1.000 | – | 1.600 | – | – | – |"
    assert rows[6].startswith("| constant-velocity | – |") and "test split, 200 samples" in table
    with pytest.raises(ValueError, match="different samples"):
        markdown_table([tmp_path / "greedy", run("other", samples=100)])
