"""Load a saved vla model directory: model, processor, codec and metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vla.model.build import CODEC_DIR, VLA_META_FILE, is_saved_model


@dataclass
class LoadedModel:
    path: Path
    model: object
    processor: object
    codec: object
    meta: dict

    @property
    def tokenizer(self):
        return self.processor.tokenizer


def load_codec_of(model_dir: str | Path):
    from vla.trajectory.registry import load_codec

    return load_codec(Path(model_dir) / CODEC_DIR)


def load_model_dir(path: str | Path, device: str = "cpu", dtype: str = "float32",
                   adapter: str | Path | None = None) -> LoadedModel:
    """Load a vla model directory (either architecture of :mod:`vla.model.arch`); with
    ``adapter``, a LoRA adapter merged into it."""
    import torch
    from transformers import AutoProcessor

    from vla.model.arch import load_pretrained

    p = Path(path)
    if not is_saved_model(p):
        raise FileNotFoundError(f"{p} is not a vla model directory (expected config.json, "
                                f"model.safetensors, tokenizer.json, {VLA_META_FILE} and "
                                f"{CODEC_DIR}/); create one with `vla model init`")
    model = load_pretrained(p, dtype=getattr(torch, dtype))
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{adapter} is not a LoRA adapter (no adapter_config.json)")
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.to(device).eval()
    return LoadedModel(p, model, AutoProcessor.from_pretrained(p), load_codec_of(p),
                       json.loads((p / VLA_META_FILE).read_text()))


def grammar_for_dir(path: str | Path, max_reasoning_tokens: int = 96):
    """The output grammar of a saved model directory, without loading its weights."""
    from transformers import AutoTokenizer

    from vla.model.constraints import OutputGrammar

    p = Path(path)
    config = json.loads((p / "config.json").read_text())
    vocab = config.get("text_config", config).get("vocab_size")
    return OutputGrammar.for_model(AutoTokenizer.from_pretrained(p), load_codec_of(p), vocab,
                                   max_reasoning_tokens)
