"""Named model sizes. A preset fixes the architecture (Qwen2.5-VL or Qwen3-VL:
:mod:`vla.model.arch`), its sizes and the image pixel budget.

``tiny`` is the default: a few million parameters, built locally with random
weights, so that the whole pipeline runs on a laptop CPU. ``small`` is the same
architecture at tens of millions of parameters for people with more compute. Each exists for
both architectures (:data:`PRESETS_BY_ARCH`); :data:`PRESETS` are the Qwen2.5-VL ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vla.model.arch import ARCHITECTURES, DEFAULT_ARCH, architecture


@dataclass(frozen=True)
class ModelPreset:
    """Architecture of a locally built Qwen2.5-VL or Qwen3-VL (``arch``).

    Images reach the model at their rendered size, rounded to whole 28-pixel tokens (a
    14-pixel patch, 2×2 merging: one language token per 28×28 pixels): a 224×112 camera
    image becomes 8×4 = 32 tokens. Only an image outside ``[min_image_pixels,
    max_image_pixels]`` is scaled, keeping its aspect, to the nearest token grid inside (the
    Qwen2-VL processor's ``smart_resize``, which vLLM applies the same way). ``tiny``'s
    budget is the default rig's camera image (224×112, 32 tokens), ``small``'s four times it.
    ``vision_window_px`` is the side of the vision tower's attention windows (Qwen2.5-VL's
    112 px: 4×4 merged tokens).
    ``codebook_size`` is the number of trajectory tokens (entries of the k-means segment
    codec): a model trained on a small data set needs few, so that every entry is seen often.

    A Qwen3-VL preset has 16-pixel patches (one language token per 32×32 pixels: the
    224×112 camera image becomes 224×128, 7×4 = 28 tokens), no vision windows
    (``vision_window_px`` is unused), ``deepstack_layers`` (the vision layers whose features
    DeepStack adds to the first language layers) and a ``vision_position_grid``² table of
    learned vision position embeddings; both are Qwen3-VL settings only.
    """

    name: str
    vocab_size: int  # size the BPE trainer aims for, before added tokens
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vision_hidden_size: int
    vision_intermediate_size: int
    vision_depth: int
    vision_heads: int
    max_image_pixels: int = 224 * 112
    min_image_pixels: int = 4 * 28 * 28
    vision_window_px: int = 112
    max_position_embeddings: int = 4096
    patch_size: int = 14
    spatial_merge_size: int = 2
    codebook_size: int = 2048
    arch: str = DEFAULT_ARCH
    deepstack_layers: tuple[int, ...] = ()
    vision_position_grid: int = 48

    def __post_init__(self) -> None:
        arch = architecture(self.arch)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"{self.name}: hidden_size {self.hidden_size} not divisible "
                             f"by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"{self.name}: num_heads must be a multiple of num_kv_heads")
        if (self.hidden_size // self.num_heads) % 8:
            raise ValueError(f"{self.name}: head dim must be a multiple of 8 for M-RoPE")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError(f"{self.name}: vision_hidden_size not divisible by vision_heads")
        factor = self.patch_size * self.spatial_merge_size
        if arch.windowed_vision and self.vision_window_px % factor:
            raise ValueError(f"{self.name}: vision_window_px {self.vision_window_px} must be a "
                             f"multiple of patch_size * spatial_merge_size = {factor}")
        if not factor * factor <= self.min_image_pixels <= self.max_image_pixels:
            raise ValueError(f"{self.name}: need {factor * factor} (one token) <= "
                             f"min_image_pixels {self.min_image_pixels} <= max_image_pixels "
                             f"{self.max_image_pixels}")
        if self.codebook_size < 2:
            raise ValueError(f"{self.name}: codebook_size must be >= 2, got {self.codebook_size}")
        if self.vocab_size < 512:
            raise ValueError(f"{self.name}: vocab_size {self.vocab_size} is below "
                             "the byte alphabet")
        self._check_deepstack(arch)

    def _check_deepstack(self, arch) -> None:
        """DeepStack layers: only for an architecture with DeepStack (Qwen3-VL), distinct
        vision layers in increasing order, no more of them than language layers (the k-th
        feeds language layer k)."""
        layers = tuple(self.deepstack_layers)
        object.__setattr__(self, "deepstack_layers", layers)
        if not arch.deepstack:
            if layers:
                raise ValueError(f"{self.name}: deepstack_layers is a Qwen3-VL setting, "
                                 f"not one of {arch.name}")
            return
        if list(layers) != sorted(set(layers)) or any(not 0 <= i < self.vision_depth
                                                      for i in layers):
            raise ValueError(f"{self.name}: deepstack_layers {list(layers)} must be distinct "
                             f"vision layers in increasing order, each in [0, "
                             f"{self.vision_depth - 1}] (vision_depth {self.vision_depth})")
        if len(layers) > self.num_layers:
            raise ValueError(f"{self.name}: {len(layers)} deepstack_layers but only "
                             f"{self.num_layers} language layers to add them to")
        if self.vision_position_grid < 1:
            raise ValueError(f"{self.name}: vision_position_grid must be >= 1, "
                             f"got {self.vision_position_grid}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mrope_section(self) -> list[int]:
        """Split of the rotary half-dimension into (time, height, width) sections, by the
        architecture's rule (consecutive for Qwen2.5-VL, interleaved for Qwen3-VL)."""
        return architecture(self.arch).mrope_section(self.head_dim)

    @property
    def token_side_px(self) -> int:
        """Pixels per language token along each side (patch size × merge size)."""
        return self.patch_size * self.spatial_merge_size

    @property
    def max_tokens_per_image(self) -> int:
        """Language tokens of the largest image the processor lets through unscaled."""
        return self.max_image_pixels // self.token_side_px ** 2

    def image_size_seen(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) a ``width``×``height`` image is resized to before the vision tower,
        by the processor's own rule (transformers' ``smart_resize``)."""
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        h, w = smart_resize(height, width, factor=self.token_side_px,
                            min_pixels=self.min_image_pixels, max_pixels=self.max_image_pixels)
        return w, h

    def tokens_per_image(self, width: int, height: int) -> int:
        """Language tokens of one ``width``×``height`` image."""
        w, h = self.image_size_seen(width, height)
        return (w // self.token_side_px) * (h // self.token_side_px)


PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(
        name="tiny",
        vocab_size=2048,
        hidden_size=256,
        intermediate_size=704,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        vision_hidden_size=64,
        vision_intermediate_size=128,
        vision_depth=2,
        vision_heads=2,
    ),
    "small": ModelPreset(
        name="small",
        vocab_size=4096,
        hidden_size=512,
        intermediate_size=1408,
        num_layers=8,
        num_heads=8,
        num_kv_heads=4,
        vision_hidden_size=256,
        vision_intermediate_size=512,
        vision_depth=4,
        vision_heads=4,
        max_image_pixels=448 * 224,
    ),
}




def qwen3_vl_preset(preset: ModelPreset, max_image_pixels: int, deepstack_layers: tuple[int, ...],
                    vision_position_grid: int) -> ModelPreset:
    """``preset``'s sizes as a Qwen3-VL: its patch size (32-pixel tokens), at least 4 tokens
    an image, ``max_image_pixels`` and the Qwen3-VL settings given."""
    side = ARCHITECTURES["qwen3_vl"].token_side_px
    return replace(preset, arch="qwen3_vl", patch_size=ARCHITECTURES["qwen3_vl"].patch_size,
                   min_image_pixels=4 * side * side, max_image_pixels=max_image_pixels,
                   deepstack_layers=deepstack_layers, vision_position_grid=vision_position_grid)


PRESETS_BY_ARCH: dict[str, dict[str, ModelPreset]] = {
    "qwen2_5_vl": PRESETS,
    # budgets: the default rig's 224x112 image at whole 32-px tokens (224x128), four times it
    "qwen3_vl": {
        "tiny": qwen3_vl_preset(PRESETS["tiny"], 224 * 128, (0,), 16),
        "small": qwen3_vl_preset(PRESETS["small"], 448 * 256, (1, 2), 32),
    },
}


def get_preset(name: str, arch: str = DEFAULT_ARCH) -> ModelPreset:
    """The preset ``name`` of architecture ``arch``; unknown names raise ``ValueError``
    naming the known ones."""
    presets = PRESETS_BY_ARCH.get(architecture(arch).name)
    if presets is None:
        raise ValueError(f"no presets for architecture {arch!r}; "
                         f"presets exist for {sorted(PRESETS_BY_ARCH)}")
    try:
        return presets[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known: {sorted(presets)}") from None
