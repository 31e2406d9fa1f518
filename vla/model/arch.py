"""The vision-language architectures a vla model is built on: Qwen2.5-VL and Qwen3-VL.

:data:`ARCHITECTURES` maps an architecture's name, which is also its checkpoints'
``model_type``, to an :class:`Arch`: its transformers model class, how a
:class:`vla.model.presets.ModelPreset` becomes its config and its processor, and its
vision geometry. Code that loads a saved checkpoint asks :func:`arch_of_config` (or
:func:`arch_of_dir`) which architecture its ``config.json`` holds and :func:`model_class`
for the class, so one code path serves both.

What differs between the two:

* Qwen2.5-VL: 14-pixel patches merged 2×2 (one language token per 28×28 pixels), windowed
  vision attention, M-RoPE with the rotary half-dimension cut into consecutive (time,
  height, width) sections.
* Qwen3-VL: 16-pixel patches merged 2×2 (one language token per 32×32 pixels), learned
  vision position embeddings (a square grid, interpolated to each image's patch grid),
  DeepStack (the features of some vision layers are added to the first language layers'
  hidden states at the image tokens), interleaved M-RoPE (frequencies assigned to time,
  height, width in turn). Its processor expands a video's ``<|video_pad|>`` into each
  temporal patch's mean frame time and tokens, ``<t seconds><|vision_start|><|video_pad|>…
  <|vision_end|>``, inside the chat template's ``<|vision_start|>…<|vision_end|>`` (as
  transformers 5 and vLLM both do with Qwen3-VL's own template: the time text always sits
  between two special tokens, so both engines tokenize it alike); its video processor
  bounds a whole video's pixels (frames × frame size), where Qwen2.5-VL's bounds each frame.

Both use the same chat template (:mod:`vla.model.chat_template`). Both processors resize an
image to whole tokens by the Qwen2-VL image processor's ``smart_resize`` (vLLM applies the
same rule); the builders here keep an image at its own size, rounded to whole tokens, inside
the preset's pixel budget, and a frame of a video exactly as the same picture sent as an
image.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vla.model.special_tokens import IM_END, IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_START
from vla.model.visual_inputs import TEMPORAL_PATCH

if TYPE_CHECKING:
    from vla.model.presets import ModelPreset

SPATIAL_MERGE = 2  # patches merged along each side into one language token
# a video keeps each frame at the image budget up to this many frames (Qwen3-VL's video
# processor bounds the whole video: longer videos share this many frames' pixels)
VIDEO_FRAMES_AT_IMAGE_SIZE = 8


def _qwen2_5_vl_mrope_section(head_dim: int) -> list[int]:
    """Consecutive (time, height, width) sections of the rotary half-dimension: 3/8 of it
    to each spatial axis (Qwen2.5-VL's [16, 24, 24] for 128-dimensional heads)."""
    half = head_dim // 2
    spatial = half * 3 // 8
    return [half - 2 * spatial, spatial, spatial]


def _qwen3_vl_mrope_section(head_dim: int) -> list[int]:
    """Interleaved (time, height, width) sections: 5/16 of the rotary half-dimension to each
    spatial axis (Qwen3-VL's [24, 20, 20] for 128-dimensional heads)."""
    half = head_dim // 2
    spatial = half * 5 // 16
    return [half - 2 * spatial, spatial, spatial]


def _token_ids(tokenizer) -> dict:
    """The vision token ids of ``tokenizer`` as the configs name them."""
    ids = tokenizer.convert_tokens_to_ids
    return dict(image_token_id=ids(IMAGE_PAD), video_token_id=ids(VIDEO_PAD),
                vision_start_token_id=ids(VISION_START), vision_end_token_id=ids(VISION_END))


def _text_config(preset: ModelPreset, tokenizer, rope_parameters: dict) -> dict:
    """The language model's settings both architectures share."""
    return dict(
        vocab_size=len(tokenizer),  # every id decodes to a token: no phantom rows
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_layers,
        num_attention_heads=preset.num_heads,
        num_key_value_heads=preset.num_kv_heads,
        max_position_embeddings=preset.max_position_embeddings,
        rope_parameters=rope_parameters,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def _vision_config(preset: ModelPreset, **specific) -> dict:
    """The vision tower's settings both architectures share, with ``specific`` ones added."""
    return dict(
        depth=preset.vision_depth,
        hidden_size=preset.vision_hidden_size,
        intermediate_size=preset.vision_intermediate_size,
        num_heads=preset.vision_heads,
        out_hidden_size=preset.hidden_size,
        patch_size=preset.patch_size,
        spatial_merge_size=preset.spatial_merge_size,
        temporal_patch_size=TEMPORAL_PATCH,
        **specific,
    )


def _qwen2_5_vl_config(preset: ModelPreset, tokenizer):
    """A ``Qwen2_5_VLConfig`` for ``preset`` whose vocabulary matches ``tokenizer``."""
    from transformers import Qwen2_5_VLConfig

    text_config = _text_config(preset, tokenizer, {
        "rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": preset.mrope_section})
    text_config["max_window_layers"] = preset.num_layers
    vision_config = _vision_config(preset, window_size=preset.vision_window_px,
                                   fullatt_block_indexes=[preset.vision_depth - 1])
    return Qwen2_5_VLConfig(text_config=text_config, vision_config=vision_config,
                            tie_word_embeddings=False, **_token_ids(tokenizer))


def _qwen3_vl_config(preset: ModelPreset, tokenizer):
    """A ``Qwen3VLConfig`` for ``preset`` whose vocabulary matches ``tokenizer``: interleaved
    M-RoPE (``mrope_interleaved``, which vLLM reads; transformers always interleaves),
    DeepStack from ``preset.deepstack_layers``, a ``vision_position_grid``² position table."""
    from transformers import Qwen3VLConfig

    text_config = _text_config(preset, tokenizer, {
        "rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": preset.mrope_section,
        "mrope_interleaved": True})
    text_config["head_dim"] = preset.head_dim
    vision_config = _vision_config(preset,
                                   num_position_embeddings=preset.vision_position_grid ** 2,
                                   deepstack_visual_indexes=list(preset.deepstack_layers))
    return Qwen3VLConfig(text_config=text_config, vision_config=vision_config,
                         tie_word_embeddings=False, **_token_ids(tokenizer))


def _image_size(preset: ModelPreset) -> dict:
    """The image pixel bounds the way Qwen2-VL's processors take them (``shortest_edge`` is
    the least pixel count, ``longest_edge`` the most)."""
    return {"shortest_edge": preset.min_image_pixels, "longest_edge": preset.max_image_pixels}


def _qwen2_5_vl_processor(preset: ModelPreset, tokenizer):
    """A ``Qwen2_5_VLProcessor`` keeping images and video frames at their own size within the
    preset's bounds. The video processor's bounds are per frame, with the reference
    per-frame cap (``cap_pixels_per_frame``: an even share of a 115,200-token budget per
    frame, which a few frames never reach)."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    common = dict(size=_image_size(preset), patch_size=preset.patch_size,
                  merge_size=preset.spatial_merge_size, temporal_patch_size=TEMPORAL_PATCH)
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**common, cap_pixels_per_frame=True),
        chat_template=tokenizer.chat_template,
    )


def _qwen3_vl_processor(preset: ModelPreset, tokenizer):
    """A ``Qwen3VLProcessor`` keeping images and video frames at their own size within the
    preset's bounds, normalised to [-1, 1] (Qwen3-VL's mean and std of 0.5).

    Qwen3-VL's video processor bounds the pixels of a whole video (frames × height × width).
    Its per-frame cap (``cap_pixels_per_frame``) holds each frame to ``max_video_tokens``
    tokens, here the preset's image budget, while the video's budget covers
    :data:`VIDEO_FRAMES_AT_IMAGE_SIZE` frames at that size; its least pixel count is
    :data:`TEMPORAL_PATCH` images', so that a 2-frame video's frames are resized exactly as
    images are."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    common = dict(patch_size=preset.patch_size, merge_size=preset.spatial_merge_size,
                  temporal_patch_size=TEMPORAL_PATCH, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    video_size = {"shortest_edge": TEMPORAL_PATCH * preset.min_image_pixels,
                  "longest_edge": VIDEO_FRAMES_AT_IMAGE_SIZE * preset.max_image_pixels}
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=_image_size(preset), **common),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(
            size=video_size, cap_pixels_per_frame=True,
            max_video_tokens=preset.max_tokens_per_image, **common),
        chat_template=tokenizer.chat_template,
    )


@dataclass(frozen=True)
class Arch:
    """One architecture: ``name`` is its checkpoints' ``model_type``; ``build_config(preset,
    tokenizer)`` and ``build_processor(preset, tokenizer)`` build its config and processor
    (with the tokenizer's chat template); ``mrope_section(head_dim)`` splits the rotary
    half-dimension into (time, height, width); ``patch_size`` is the side of its vision
    patches in pixels (the presets of this architecture use it); ``windowed_vision`` whether
    its vision tower attends in windows (``vision_window_px``), ``deepstack`` whether it
    adds vision layers' features to the first language layers (``deepstack_layers``)."""

    name: str
    model_class_name: str
    patch_size: int
    windowed_vision: bool
    deepstack: bool
    build_config: Callable
    build_processor: Callable
    mrope_section: Callable[[int], list[int]]
    spatial_merge_size: int = SPATIAL_MERGE

    @property
    def model_type(self) -> str:
        return self.name

    @property
    def token_side_px(self) -> int:
        """Pixels per language token along each side (patch size × merge size)."""
        return self.patch_size * self.spatial_merge_size

    def model_class(self):
        """The transformers class of this architecture's checkpoints."""
        import transformers

        return getattr(transformers, self.model_class_name)


ARCHITECTURES: dict[str, Arch] = {
    "qwen2_5_vl": Arch(
        name="qwen2_5_vl", model_class_name="Qwen2_5_VLForConditionalGeneration",
        patch_size=14, windowed_vision=True, deepstack=False,
        build_config=_qwen2_5_vl_config, build_processor=_qwen2_5_vl_processor,
        mrope_section=_qwen2_5_vl_mrope_section),
    "qwen3_vl": Arch(
        name="qwen3_vl", model_class_name="Qwen3VLForConditionalGeneration",
        patch_size=16, windowed_vision=False, deepstack=True,
        build_config=_qwen3_vl_config, build_processor=_qwen3_vl_processor,
        mrope_section=_qwen3_vl_mrope_section),
}
DEFAULT_ARCH = "qwen2_5_vl"


def _known() -> str:
    return ", ".join(f"{name} ({arch.model_class_name})" for name, arch in ARCHITECTURES.items())


def architecture(name: str) -> Arch:
    """The :class:`Arch` named ``name``; an unknown name raises ``ValueError`` naming the
    known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {_known()}") from None


def model_class(arch_name: str):
    """The transformers model class of architecture ``arch_name``."""
    return architecture(arch_name).model_class()


def arch_of_config(config: dict, where: str = "config.json") -> str:
    """The architecture of a checkpoint's ``config.json`` (as a dict): its ``model_type``.
    A model type that is not one of :data:`ARCHITECTURES` raises ``ValueError`` naming it,
    ``where`` it was read and the supported ones."""
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise ValueError(f"{where}: model_type {model_type!r} is not supported; "
                         f"supported: {_known()}")
    return model_type


def arch_of_dir(model_dir: str | Path) -> str:
    """The architecture of the checkpoint in ``model_dir`` (:func:`arch_of_config` of its
    ``config.json``)."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json: not a local checkpoint")
    return arch_of_config(json.loads(path.read_text()), str(path))


def load_pretrained(model_dir: str | Path, **kwargs):
    """The checkpoint in ``model_dir`` through its architecture's model class
    (``from_pretrained`` with ``kwargs``, e.g. ``dtype``)."""
    return model_class(arch_of_dir(model_dir)).from_pretrained(model_dir, **kwargs)
