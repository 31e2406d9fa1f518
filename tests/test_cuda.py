"""On a CUDA machine: the profile is detected, and the tiny model runs on the GPU.

Skipped where no GPU is visible (CI and the CPU profile); run on a GPU machine with
``python -m pytest tests/test_cuda.py``.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from vla.serving.parity import hf_forward, synthetic_camera_images

ROOT = Path(__file__).resolve().parents[1]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.env
@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no nvidia-smi")
def test_setup_chooses_the_cuda_profile_where_a_gpu_is_visible():
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--print-profile"],
                         capture_output=True, text=True, timeout=60)
    gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    assert out.stdout.strip() == ("cuda" if gpus.startswith("GPU") else "cpu")


@needs_cuda
def test_tiny_model_on_gpu_matches_cpu(tiny_model_dir):
    images = synthetic_camera_images(2)
    cpu = hf_forward(tiny_model_dir, images)
    gpu = hf_forward(tiny_model_dir, images, device="cuda", dtype="float32")
    assert gpu.prompt_ids == cpu.prompt_ids
    assert np.abs(gpu.logprobs - cpu.logprobs).max() < 1e-3
    bf16 = hf_forward(tiny_model_dir, images, device="cuda", dtype="bfloat16")
    assert np.isfinite(bf16.logprobs).all()
    assert np.abs(bf16.logprobs - cpu.logprobs).max() < 0.1
