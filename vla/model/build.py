"""Build a Qwen2.5-VL with random weights from a preset, and save it for transformers and vLLM.

What is saved in the output directory is an ordinary Hugging Face checkpoint:
``config.json`` + ``model.safetensors`` (``Qwen2_5_VLForConditionalGeneration``),
the tokenizer (with its chat template) and a ``Qwen2_5_VLProcessor`` whose image and video
processors keep an image at its size (rounded to whole 28-pixel tokens) within the preset's
pixel budget. ``from_pretrained`` and vLLM's ``--model DIR`` both load it, vLLM reading the
budget from the saved ``processor_config.json`` (its image and video processor parts);
nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from vla.model.presets import ModelPreset
from vla.model.special_tokens import IM_END, IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_START

VLA_META_FILE = "vla_model.json"


def build_config(preset: ModelPreset, tokenizer):
    """A ``Qwen2_5_VLConfig`` for ``preset`` whose vocabulary matches ``tokenizer``."""
    from transformers import Qwen2_5_VLConfig

    vocab = len(tokenizer)  # every id decodes to a token: no phantom rows
    ids = tokenizer.convert_tokens_to_ids
    text_config = dict(
        vocab_size=vocab,
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_layers,
        num_attention_heads=preset.num_heads,
        num_key_value_heads=preset.num_kv_heads,
        max_position_embeddings=preset.max_position_embeddings,
        max_window_layers=preset.num_layers,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                         "mrope_section": preset.mrope_section},
        bos_token_id=None,
        eos_token_id=ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    vision_config = dict(
        depth=preset.vision_depth,
        hidden_size=preset.vision_hidden_size,
        intermediate_size=preset.vision_intermediate_size,
        num_heads=preset.vision_heads,
        out_hidden_size=preset.hidden_size,
        patch_size=preset.patch_size,
        spatial_merge_size=preset.spatial_merge_size,
        temporal_patch_size=2,
        window_size=preset.vision_window_px,
        fullatt_block_indexes=[preset.vision_depth - 1],
    )
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids(IMAGE_PAD),
        video_token_id=ids(VIDEO_PAD),
        vision_start_token_id=ids(VISION_START),
        vision_end_token_id=ids(VISION_END),
        tie_word_embeddings=False,
    )


def build_processor(preset: ModelPreset, tokenizer):
    """A Qwen2.5-VL processor that keeps each image (and video frame) at its own size, rounded
    to whole tokens, and scales only one outside ``[preset.min_image_pixels,
    preset.max_image_pixels]`` into that range, keeping its aspect.

    ``size`` holds the pixel bounds the way Qwen2-VL's processors take them (``shortest_edge``
    is the least pixel count, ``longest_edge`` the most). The video processor gets the same
    bounds and the reference per-frame cap (``cap_pixels_per_frame``: an even share of a
    115,200-token budget per frame, which a few frames never reach), so a frame of a video is
    resized exactly as the same picture sent as an image.
    """
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": preset.min_image_pixels, "longest_edge": preset.max_image_pixels}
    common = dict(size=size, patch_size=preset.patch_size, merge_size=preset.spatial_merge_size,
                  temporal_patch_size=2)
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**common, cap_pixels_per_frame=True),
        chat_template=tokenizer.chat_template,
    )


def build_model(preset: ModelPreset, tokenizer, seed: int = 0):
    """A randomly initialised ``Qwen2_5_VLForConditionalGeneration`` in float32."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(build_config(preset, tokenizer))
    return model.float().eval()


def save_model(model, processor, preset: ModelPreset, out_dir: str | Path) -> Path:
    """Save model, tokenizer, processor and a small vla metadata file to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = model.config.text_config.eos_token_id
    model.generation_config.pad_token_id = model.config.text_config.pad_token_id
    model.save_pretrained(out)
    processor.save_pretrained(out)
    meta = {"preset": preset.name, "min_image_pixels": preset.min_image_pixels,
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
