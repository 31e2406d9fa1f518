"""Test environment: one OpenMP thread, no hub access, shared tiny checkpoint."""

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Qwen2.5-VL with random weights, saved once per test session."""
    from vla.model.build import init_model
    from vla.model.presets import get_preset

    return init_model(get_preset("tiny"), tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory):
    """A small driving-scene data set (4 episodes), built once per test session."""
    from vla.data.build import BuildConfig, build_dataset

    out = tmp_path_factory.mktemp("data") / "scenes"
    build_dataset(BuildConfig(episodes=4, seed=1, workers=1), out, progress=False)
    return out
