"""``vla model merge``: fold a LoRA adapter into its base and save a standalone model.

Runs in its own process on purpose: under DeepSpeed ZeRO-3 the training processes hold only
shards of the base, so merging there would need a gather; here the base and the adapter
are read whole from disk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from vla.model.build import CODEC_DIR, VLA_META_FILE, is_saved_model


def merge_adapter(base: str | Path, adapter: str | Path, out: str | Path) -> Path:
    from vla.model.loading import load_model_dir

    base, adapter, out = Path(base), Path(adapter), Path(out)
    if out.resolve() in (base.resolve(), adapter.resolve()):
        raise ValueError("--out must be a new folder, not the base or the adapter")
    loaded = load_model_dir(base, adapter=adapter)  # checks both, merges in memory
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    loaded.model.save_pretrained(tmp)
    loaded.processor.save_pretrained(tmp)
    shutil.copytree(base / CODEC_DIR, tmp / CODEC_DIR)
    meta = {**loaded.meta, "merged": {"base": str(base), "adapter": str(adapter)}}
    (tmp / VLA_META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if not is_saved_model(tmp):
        raise RuntimeError(f"merged model in {tmp} is incomplete")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
