"""Test environment: one OpenMP thread, no hub access; session fixtures shared by the tests:
the tiny checkpoint, a small data set, a random LoRA adapter and one LoRA-enabled vLLM server.

Tiers (markers in pyproject.toml): ``make test-fast`` runs the tests without a tier marker on
two pytest-xdist workers; ``make test`` runs all. The checkpoint, the data set and the adapter
are built once per run, also on several workers (:func:`built_once`).
"""

import fcntl
import os
import shutil
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def built_once(tmp_path_factory, name: str, leaf: str, build) -> Path:
    """``build(path)`` writes a read-only test input to ``path`` (``<folder name>/<leaf>``, not
    there yet); return that path, built once per test run.

    In one process that is once per session. Under pytest-xdist each worker is a session of
    its own, so the workers share the run's temporary root: the first to take the file lock
    builds there (its finished marker written last), the others wait for it and reuse it."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        path = tmp_path_factory.mktemp(name) / leaf
        build(path)
        return path
    root = tmp_path_factory.getbasetemp().parent  # this run's folder, above every worker's
    folder, done = root / f"shared-{name}", root / f"shared-{name}.built"
    path = folder / leaf
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that died mid-build
            folder.mkdir()
            build(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Qwen2.5-VL with random weights (seed 0), saved once per test run."""
    from vla.model.build import init_model
    from vla.model.presets import get_preset

    return built_once(tmp_path_factory, "tiny", "model",
                      lambda path: init_model(get_preset("tiny"), path))


@pytest.fixture(scope="session")
def tiny_qwen3_model_dir(tmp_path_factory):
    """A tiny Qwen3-VL with random weights (seed 0), saved once per test run."""
    from vla.model.build import init_model
    from vla.model.presets import get_preset

    return built_once(tmp_path_factory, "tiny_qwen3", "model",
                      lambda path: init_model(get_preset("tiny", "qwen3_vl"), path))


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory):
    """A small driving-scene data set (4 episodes, seed 1), built once per test run."""
    from vla.data.build import BuildConfig, build_dataset

    return built_once(tmp_path_factory, "data", "scenes", lambda path: build_dataset(
        BuildConfig(episodes=4, seed=1, workers=1), path, progress=False))


@pytest.fixture(scope="session")
def small_train_split(small_data_dir):
    """The train split of :func:`small_data_dir`, loaded once per test run."""
    from vla.data.build import load_dataset_dir

    return load_dataset_dir(small_data_dir)[0]["train"]


@pytest.fixture(scope="session")
def lora_adapter_dir(tiny_model_dir, tmp_path_factory):
    """A rank-8 LoRA adapter with random non-zero weights (seed 0) on the tiny model, saved
    once per test run."""
    from vla.model.lora import random_adapter

    return built_once(tmp_path_factory, "lora", "adapter",
                      lambda path: random_adapter(tiny_model_dir, path, scale=1.0))


def pytest_collection_modifyitems(items):
    """Run the tests on the shared vLLM server last, one after the other (in their collected
    order): the server starts at the first of them and stops at the session's end, so it
    never idles beside the other tests."""
    items.sort(key=lambda item: "vllm_server" in getattr(item, "fixturenames", ()))


# the LoRA rank the shared server accepts: covers the rank-8 adapters the tests load
SHARED_SERVER_MAX_LORA_RANK = 16


@pytest.fixture(scope="session")
def vllm_server(tiny_model_dir, tmp_path_factory):
    """One ``vllm serve`` of the tiny model (served as ``tiny``) on 127.0.0.1 for the whole
    session, shared by the smoke, serving and GRPO tests: the default camera rig's frames per
    prompt (cameras x frames; each camera one video), 4,096 tokens,
    LoRA enabled with adapters loaded and unloaded at run time (``load_lora_adapter``).

    Started by the first test that asks for it; stopped at the end of the session by its
    process group, after which none of its processes may be alive. Tests add the adapters
    they need under their own names and must not assume which other adapters are loaded."""
    from vla.serving.client import default_images_per_prompt
    from vla.serving.vllm_server import ServerConfig, VLLMServer

    server = VLLMServer(ServerConfig(model=tiny_model_dir, served_model_name="tiny",
                                     images_per_prompt=default_images_per_prompt(),
                                     max_model_len=4096, enable_lora=True,
                                     max_lora_rank=SHARED_SERVER_MAX_LORA_RANK),
                        log_path=tmp_path_factory.mktemp("vllm") / "vllm.log")
    server.start()
    yield server
    server.stop()
    assert server.alive_pids() == [], "vLLM processes outlived the server's stop"


@pytest.fixture(scope="session")
def load_lora_adapter(vllm_server):
    """``load(name, adapter_dir)``: serve the LoRA adapter in ``adapter_dir`` as ``name`` on
    the shared server (replacing an adapter of that name), without restarting it."""
    from vla.rl.grpo import swap_adapter

    def load(name: str, adapter_dir) -> None:
        swap_adapter(vllm_server.url, name, Path(adapter_dir), None)

    return load
