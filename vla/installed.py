"""What is installed: the profile (cpu / cuda) and the versions of the libraries that matter."""

from __future__ import annotations

import importlib.metadata as md

PACKAGES = ("torch", "torchvision", "transformers", "peft", "accelerate", "deepspeed",
            "datasets", "trl", "vllm", "highway-env")


def versions() -> dict[str, str | None]:
    """Installed version of each package in :data:`PACKAGES` (None when missing)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def profile() -> str:
    """``cuda`` when torch is a CUDA build and sees a GPU, else ``cpu``."""
    import torch

    return "cuda" if torch.version.cuda and torch.cuda.is_available() else "cpu"
