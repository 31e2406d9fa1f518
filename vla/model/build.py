"""Build a Qwen2.5-VL or Qwen3-VL with random weights from a preset, and save it for
transformers and vLLM.

What is saved in the output directory is an ordinary Hugging Face checkpoint:
``config.json`` + ``model.safetensors`` (``Qwen2_5_VLForConditionalGeneration`` or
``Qwen3VLForConditionalGeneration``, after the preset's ``arch``: :mod:`vla.model.arch`),
the tokenizer (with its chat template) and the architecture's processor, whose image and
video processors keep an image at its size (rounded to whole tokens: 28 pixels for
Qwen2.5-VL, 32 for Qwen3-VL) within the preset's pixel budget. ``from_pretrained`` and
vLLM's ``--model DIR`` both load it, vLLM reading the budget from the saved
``processor_config.json`` (its image and video processor parts); nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from vla.model.arch import architecture
from vla.model.presets import ModelPreset

VLA_META_FILE = "vla_model.json"


def build_config(preset: ModelPreset, tokenizer):
    """The config of ``preset``'s architecture (``Qwen2_5_VLConfig`` or ``Qwen3VLConfig``)
    whose vocabulary matches ``tokenizer``."""
    return architecture(preset.arch).build_config(preset, tokenizer)


def build_processor(preset: ModelPreset, tokenizer):
    """The processor of ``preset``'s architecture with ``tokenizer`` (and its chat template):
    it keeps each image (and video frame) at its own size, rounded to whole tokens, and
    scales only one outside ``[preset.min_image_pixels, preset.max_image_pixels]`` into that
    range, keeping its aspect (:mod:`vla.model.arch`)."""
    return architecture(preset.arch).build_processor(preset, tokenizer)


def build_model(preset: ModelPreset, tokenizer, seed: int = 0):
    """A randomly initialised model of ``preset``'s architecture, in float32."""
    import torch

    torch.manual_seed(seed)
    model = architecture(preset.arch).model_class()(build_config(preset, tokenizer))
    return model.float().eval()


def save_model(model, processor, preset: ModelPreset, out_dir: str | Path) -> Path:
    """Save model, tokenizer, processor and a small vla metadata file to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = model.config.text_config.eos_token_id
    model.generation_config.pad_token_id = model.config.text_config.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    meta = {"preset": preset.name, "arch": preset.arch,
            "min_image_pixels": preset.min_image_pixels,
            "max_image_pixels": preset.max_image_pixels,
            "max_tokens_per_image": preset.max_tokens_per_image,
            "parameters": sum(p.numel() for p in model.parameters())}
    (out / VLA_META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


CODEC_DIR = "trajectory_codec"
SMALL_DATA = 2000  # fewer training trajectories than this are topped up with synthetic ones


def fit_default_codec(data_dir: str | Path | None = None, seed: int = 0,
                      codebook_size: int | None = None):
    """The default trajectory codec, fitted on a data set's train split (or synthetic data).

    ``codebook_size`` overrides the default codec's (2,048 entries). A train split smaller
    than :data:`SMALL_DATA` trajectories is topped up with synthetic ones when its segments
    are too few to fill the codebook (under 8 per entry).
    """
    import numpy as np

    from vla.trajectory.registry import default_codec
    from vla.trajectory.synthetic import generate
    from vla.trajectory.types import TrajectorySpec

    if data_dir is not None:
        from vla.trajectory.data import load_splits

        spec, splits = load_splits(data_dir, ("train",))
        trajectories, egos = splits["train"].trajectories, list(splits["train"].egos)
    else:
        spec, trajectories, egos = TrajectorySpec(), np.zeros((0, 60, 3)), []
    overrides = {} if codebook_size is None else {"codebook_size": codebook_size}
    codec = default_codec(hz=spec.hz, horizon_s=spec.horizon_s, **overrides)
    if len(egos) < SMALL_DATA and len(egos) * codec.num_tokens < 8 * codec.vocab_size:
        # a small data set cannot fill the codebook: top it up with synthetic trajectories
        extra, extra_egos, _ = generate(SMALL_DATA + 1000 - len(egos), seed=seed, spec=spec)
        trajectories = np.concatenate([trajectories.reshape(-1, *extra.shape[1:]), extra])
        egos = egos + list(extra_egos)
    codec.fit(trajectories, egos)
    return codec


def init_model(preset: ModelPreset, out_dir: str | Path, seed: int = 0,
               data_dir: str | Path | None = None) -> Path:
    """Fit the codec, train the tokenizer, build a random model and save all to ``out_dir``.

    With ``data_dir`` (a built data set) the codec is fitted on its train split and the
    tokenizer also learns from its causal sentences; without, synthetic trajectories.
    """
    from vla.model.tokenizer import project_corpus, train_tokenizer
    from vla.model.trajectory_tokens import trajectory_tokens

    codec = fit_default_codec(data_dir, seed=seed, codebook_size=preset.codebook_size)
    corpus = project_corpus()
    if data_dir is not None:
        from datasets import load_from_disk

        corpus += list(load_from_disk(str(data_dir))["train"]["reasoning"])
    tokenizer = train_tokenizer(corpus, preset.vocab_size,
                                extra_tokens=trajectory_tokens(codec.vocab_size))
    model = build_model(preset, tokenizer, seed=seed)
    out = save_model(model, build_processor(preset, tokenizer), preset, out_dir)
    codec.save(out / CODEC_DIR)
    meta_path = out / VLA_META_FILE
    meta = json.loads(meta_path.read_text())
    meta.update(codec=codec.name, trajectory_tokens=codec.num_tokens,
                codec_vocab=codec.vocab_size)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return out


def is_saved_model(path: str | Path) -> bool:
    """True if ``path`` holds a complete checkpoint written by :func:`save_model`."""
    p = Path(path)
    needed = ("config.json", "model.safetensors", "tokenizer.json", VLA_META_FILE,
              f"{CODEC_DIR}/trajectory_codec.json")
    return all((p / name).is_file() for name in needed)
