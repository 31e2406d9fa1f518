"""The packaged files (prompts, recipes, serving configs, scenario sets, training configs) are
found through vla.resources from any working directory; `vla serve --config` reads a serving
config and the flags override it (no server is started here)."""

import json
import os
import subprocess
import sys

import pytest

from vla.resources import named_or_file, resource_dir, resource_names, resource_path
from vla.serving.vllm_server import (
    SERVE_CONFIG_KEYS,
    ServerConfig,
    VLLMServer,
    load_serve_config,
    server_config,
)


def test_every_resource_folder_is_found_from_anywhere(tmp_path):
    assert resource_names("data_recipes") == ["default", "highway", "intersection", "merge",
                                              "roundabout"]
    assert resource_names("serve") == ["cpu", "gpu", "tp2"]
    assert {"demo", "benchmark", "mixed"} <= set(resource_names("eval/scenarios"))
    assert {"tiny_stage1", "tiny_stage2", "tiny_grpo"} <= set(resource_names("train/configs"))
    assert resource_path("prompts/system.txt").read_text().strip()
    code = ("from vla.resources import resource_path; "
            "print(resource_path('eval/scenarios/demo.yaml'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": ""})
    assert out.stdout.strip() == str(resource_path("eval/scenarios/demo.yaml"))
    with pytest.raises(ValueError, match="unknown resource folder 'nope'"):
        resource_dir("nope")
    with pytest.raises(FileNotFoundError, match="prompts/missing.txt is missing"):
        resource_path("prompts/missing.txt")


def test_a_name_or_a_file(tmp_path):
    assert named_or_file("serve", "cpu", "serving config") == resource_dir("serve") / "cpu.yaml"
    mine = tmp_path / "mine.yaml"
    mine.write_text("port: 9000\n")
    assert named_or_file("serve", str(mine), "serving config") == mine
    with pytest.raises(ValueError, match=r"unknown serving config 'tp8'; packaged serving "
                                         r"configs: \['cpu', 'gpu', 'tp2'\]"):
        named_or_file("serve", "tp8", "serving config")
    with pytest.raises(FileNotFoundError, match="no serving config file at"):
        named_or_file("serve", tmp_path / "absent.yaml", "serving config")


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({}))
    return tmp_path / "model"


def test_serving_configs_hold_the_engine_settings_and_flags_override_them(model_dir, tmp_path):
    for name in ("cpu", "gpu", "tp2"):
        path, settings = load_serve_config(name)
        assert path.name == f"{name}.yaml" and set(settings) <= set(SERVE_CONFIG_KEYS)
        server_config(model_dir, name)  # every packaged config is valid
    cpu = server_config(model_dir, "cpu")
    # what `vla serve` ran with before the configs were files, for the 4-camera rig
    assert (cpu.host, cpu.port, cpu.dtype, cpu.max_model_len, cpu.images_per_prompt,
            cpu.kv_cache_gib, cpu.enable_lora, cpu.tensor_parallel_size) == \
        ("127.0.0.1", 8000, "float32", 4096, 8, 1, True, 1)
    flagged = server_config(model_dir, "cpu", port=8123, max_model_len=2048, host=None)
    assert (flagged.port, flagged.max_model_len, flagged.host) == (8123, 2048, "127.0.0.1")
    command = VLLMServer(server_config(model_dir, "tp2")).command()
    assert command[command.index("--tensor-parallel-size") + 1] == "2"
    assert "--tensor-parallel-size" not in VLLMServer(cpu).command()
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: 8000\nspeed: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown keys \['speed'\]"):
        server_config(model_dir, str(bad))
    bad.write_text("tensor_parallel_size: 0\n")
    with pytest.raises(ValueError, match="bad.yaml.*tensor_parallel_size must be >= 1"):
        server_config(model_dir, str(bad))
    assert ServerConfig(model=model_dir).tensor_parallel_size == 1


def test_vla_serve_refuses_an_unknown_config_by_name(model_dir):
    out = subprocess.run([sys.executable, "-m", "vla.cli", "serve", "--model", str(model_dir),
                          "--config", "tp8"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "unknown serving config 'tp8'" in out.stderr
