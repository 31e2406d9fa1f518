"""Exact-shape configurations of the real checkpoints, for throughput and memory work
without downloads.

A shape is the published ``config.json`` of a checkpoint, copied here value for value:

* ``cosmos-reason1-7b``: Cosmos-Reason1-7B is a Qwen2.5-VL-7B finetune; its config is
  ``Qwen/Qwen2.5-VL-7B-Instruct``'s (https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct,
  ``config.json``; 8,292,166,656 parameters in its safetensors index).
* ``cosmos-reason2-2b`` / ``cosmos-reason2-8b``: Qwen3-VL-2B / -8B
  (https://huggingface.co/Qwen/Qwen3-VL-2B-Instruct and .../Qwen3-VL-8B-Instruct,
  ``config.json``; 2,127,532,032 and 8,767,123,696 parameters in their safetensors indexes,
  the 2B's tied input and output embeddings counted once).

:func:`build_shape` turns a shape into a random-weight model config. Two things differ from
the published checkpoint, on purpose:

* **Vocabulary.** Our output delimiters and one token per trajectory-codec entry are
  injected (:mod:`vla.model.special_tokens`, :mod:`vla.model.trajectory_tokens`), so the
  embedding (and the output head) has the published vocabulary size *plus* our added rows
  (6 delimiters + the codebook, 2,048 by default: 2,054 rows). ``vla model inject`` on a
  real checkpoint grows the embedding to ``max(len(tokenizer) + added, published)``, a few
  hundred rows fewer, since the published matrices already carry some unused padding rows:
  the shape is that size rounded up, under 0.1 % of the parameters. Our own tokenizer has a
  few thousand entries, not 150 k: its ids are a subset of the embedding rows, and the rows
  past it are never written by the output grammar (:mod:`vla.model.constraints`).
* **Depth.** ``layers`` cuts the language model to that many decoder layers and the vision
  tower *proportionally* (``round(depth * layers / full_layers)``, at least 1 block, and for
  Qwen3-VL at least one block per DeepStack merger), every width kept. Qwen2.5-VL's
  full-attention blocks move to proportional blocks of the cut tower (some may merge);
  Qwen3-VL's DeepStack mergers all stay, on distinct proportional blocks, so the vision tower
  keeps its parameters outside its blocks. Parameter counts per component then extrapolate
  back to full depth exactly (:func:`extrapolate_parameters`).

Token ids (image, video, vision start and end, end of turn, padding) are the published ones
unless a tokenizer is given, whose ids are used instead.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import MappingProxyType

from vla.model.special_tokens import (
    IM_END,
    IMAGE_PAD,
    OUTPUT_DELIMITERS,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
)

QWEN2_5_VL = "qwen2_5_vl"
QWEN3_VL = "qwen3_vl"
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_CODEBOOK = 2048


@dataclass(frozen=True)
class ExactShape:
    """A published checkpoint's architecture: its ``text_config`` and ``vision_config`` values
    (transformers 5 spelling: ``rope_parameters``), the top-level token ids, and the published
    parameter total (its safetensors index) that the shape must reproduce."""

    name: str
    arch: str  # the config's model_type
    source: str  # the published checkpoint the values are copied from
    text: MappingProxyType
    vision: MappingProxyType
    tie_word_embeddings: bool
    published_parameters: int
    token_ids: MappingProxyType = field(default_factory=lambda: MappingProxyType({
        "image_token_id": 151655, "video_token_id": 151656,
        "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "eos_token_id": 151645, "pad_token_id": 151643}))

    def __post_init__(self) -> None:
        if self.arch not in (QWEN2_5_VL, QWEN3_VL):
            raise ValueError(f"shape {self.name}: unknown architecture {self.arch!r}")
        for key in ("hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "vocab_size"):
            if key not in self.text:
                raise ValueError(f"shape {self.name}: text config lacks {key}")
        for key in ("depth", "hidden_size", "intermediate_size", "num_heads", "patch_size"):
            if key not in self.vision:
                raise ValueError(f"shape {self.name}: vision config lacks {key}")

    @property
    def num_layers(self) -> int:
        """The language model's published depth."""
        return int(self.text["num_hidden_layers"])

    @property
    def vision_depth(self) -> int:
        return int(self.vision["depth"])

    @property
    def published_vocab(self) -> int:
        return int(self.text["vocab_size"])

    @property
    def patch_size(self) -> int:
        return int(self.vision["patch_size"])

    @property
    def deepstack(self) -> list[int]:
        """Qwen3-VL's DeepStack vision layers (none for Qwen2.5-VL)."""
        return list(self.vision.get("deepstack_visual_indexes", ()))

    def vision_depth_at(self, layers: int) -> int:
        """The vision tower's depth for a language model cut to ``layers``: proportional, at
        least 1 block and at least one block per DeepStack merger."""
        return max(1, len(self.deepstack), round(self.vision_depth * layers / self.num_layers))


SHAPES: dict[str, ExactShape] = {
    # https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json
    "cosmos-reason1-7b": ExactShape(
        name="cosmos-reason1-7b", arch=QWEN2_5_VL, source="Qwen/Qwen2.5-VL-7B-Instruct",
        text=MappingProxyType(dict(
            hidden_act="silu", hidden_size=3584, intermediate_size=18944,
            num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
            vocab_size=152064, max_position_embeddings=128000, max_window_layers=28,
            rms_norm_eps=1e-06, sliding_window=32768, use_sliding_window=False,
            attention_dropout=0.0, initializer_range=0.02,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                             "mrope_section": [16, 24, 24]})),
        vision=MappingProxyType(dict(
            depth=32, hidden_act="silu", hidden_size=1280, intermediate_size=3420,
            num_heads=16, in_channels=3, out_hidden_size=3584, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, window_size=112,
            fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2)),
        tie_word_embeddings=False, published_parameters=8_292_166_656),
    # https://huggingface.co/Qwen/Qwen3-VL-2B-Instruct/blob/main/config.json
    "cosmos-reason2-2b": ExactShape(
        name="cosmos-reason2-2b", arch=QWEN3_VL, source="Qwen/Qwen3-VL-2B-Instruct",
        text=MappingProxyType(dict(
            hidden_act="silu", hidden_size=2048, intermediate_size=6144,
            num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
            vocab_size=151936, max_position_embeddings=262144, rms_norm_eps=1e-06,
            attention_bias=False, attention_dropout=0.0, initializer_range=0.02,
            rope_parameters={"rope_type": "default", "rope_theta": 5000000.0,
                             "mrope_section": [24, 20, 20], "mrope_interleaved": True})),
        vision=MappingProxyType(dict(
            depth=24, hidden_act="gelu_pytorch_tanh", hidden_size=1024, intermediate_size=4096,
            num_heads=16, in_channels=3, out_hidden_size=2048, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
            deepstack_visual_indexes=[5, 11, 17], initializer_range=0.02)),
        tie_word_embeddings=True, published_parameters=2_127_532_032),
    # https://huggingface.co/Qwen/Qwen3-VL-8B-Instruct/blob/main/config.json
    "cosmos-reason2-8b": ExactShape(
        name="cosmos-reason2-8b", arch=QWEN3_VL, source="Qwen/Qwen3-VL-8B-Instruct",
        text=MappingProxyType(dict(
            hidden_act="silu", hidden_size=4096, intermediate_size=12288,
            num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
            vocab_size=151936, max_position_embeddings=262144, rms_norm_eps=1e-06,
            attention_bias=False, attention_dropout=0.0, initializer_range=0.02,
            rope_parameters={"rope_type": "default", "rope_theta": 5000000.0,
                             "mrope_section": [24, 20, 20], "mrope_interleaved": True})),
        vision=MappingProxyType(dict(
            depth=27, hidden_act="gelu_pytorch_tanh", hidden_size=1152, intermediate_size=4304,
            num_heads=16, in_channels=3, out_hidden_size=4096, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
            deepstack_visual_indexes=[8, 16, 24], initializer_range=0.02)),
        tie_word_embeddings=False, published_parameters=8_767_123_696),
}


def get_shape(name: str) -> ExactShape:
    try:
        return SHAPES[name]
    except KeyError:
        raise ValueError(f"unknown model shape {name!r}; known: {sorted(SHAPES)}") from None


def added_token_count(codebook_size: int = DEFAULT_CODEBOOK) -> int:
    """Rows our injection adds to the embedding: the output delimiters and one per codec id."""
    return len(OUTPUT_DELIMITERS) + codebook_size


def _proportional(index: int, depth: int, new_depth: int) -> int:
    """Block ``index`` of a ``depth``-block tower moved to the same relative place (counted
    from its end) in a ``new_depth``-block one."""
    return max(0, (index + 1) * new_depth // depth - 1)


def _spread_full_attention(indexes, depth: int, new_depth: int) -> list[int]:
    """Qwen2.5-VL's full-attention blocks in the cut tower (two may merge into one)."""
    if new_depth == depth:
        return list(indexes)
    return sorted({_proportional(i, depth, new_depth) for i in indexes})


def _spread_deepstack(indexes, depth: int, new_depth: int) -> list[int]:
    """Qwen3-VL's DeepStack layers in the cut tower: as many as before, on distinct blocks in
    increasing order (each merger keeps its own feature; ``new_depth`` >= their number)."""
    if new_depth == depth:
        return list(indexes)
    out: list[int] = []
    for i in indexes:
        out.append(max(_proportional(i, depth, new_depth), out[-1] + 1 if out else 0))
    for k in range(len(out) - 1, -1, -1):  # pushed past the end: pull back, keeping order
        out[k] = min(out[k], new_depth - (len(out) - k))
    return out


@dataclass
class ShapeBuild:
    """A shape cut to ``layers``, as a transformers config, with ways to instantiate it."""

    shape: ExactShape
    layers: int
    vision_depth: int
    vocab_size: int
    dtype: str
    config: object

    def model_class(self):
        """The transformers model class of the shape's architecture (:mod:`vla.model.arch`)."""
        from vla.model.arch import model_class

        return model_class(self.shape.arch)

    def on_meta(self):
        """The model on the ``meta`` device: shapes and parameter counts, no memory."""
        import torch

        with torch.device("meta"):
            return self.model_class()(self.config)

    def instantiate(self, device: str = "cpu", seed: int = 0):
        """The model with random weights (transformers' initialisation) in ``self.dtype`` on
        ``device``, in eval mode; built directly on the device (``cuda`` too)."""
        import torch

        torch.manual_seed(seed)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(getattr(torch, self.dtype))
        try:
            with torch.device(device):
                model = self.model_class()(self.config)
        finally:
            torch.set_default_dtype(previous)
        return model.eval()


def build_shape(name: str | ExactShape, layers: int | None = None, dtype: str = "bfloat16",
                tokenizer=None, codebook_size: int = DEFAULT_CODEBOOK) -> ShapeBuild:
    """The random-weight model config of shape ``name`` (one of :data:`SHAPES`, or an
    :class:`ExactShape` itself) cut to ``layers`` language-model layers
    (default: the published depth), its vocabulary the published one plus our
    :func:`added_token_count` rows, its token ids ``tokenizer``'s when one is given.

    Raises ``ValueError`` for an unknown shape, a depth outside ``1..published``, an unknown
    dtype, or a tokenizer with more entries than the embedding has rows.
    """
    shape = name if isinstance(name, ExactShape) else get_shape(name)
    name = shape.name
    layers = shape.num_layers if layers is None else layers
    if not 1 <= layers <= shape.num_layers:
        raise ValueError(f"shape {name}: layers must be in 1..{shape.num_layers}, got {layers}")
    if dtype not in DTYPES:
        raise ValueError(f"shape {name}: dtype must be one of {DTYPES}, got {dtype!r}")
    if codebook_size < 2:
        raise ValueError(f"shape {name}: codebook_size must be >= 2, got {codebook_size}")
    vocab = shape.published_vocab + added_token_count(codebook_size)
    ids = dict(shape.token_ids)
    if tokenizer is not None:
        if len(tokenizer) > vocab:
            raise ValueError(f"shape {name}: the tokenizer has {len(tokenizer)} entries, more "
                             f"than the embedding's {vocab} rows")
        tid = tokenizer.convert_tokens_to_ids
        ids = {"image_token_id": tid(IMAGE_PAD), "video_token_id": tid(VIDEO_PAD),
               "vision_start_token_id": tid(VISION_START),
               "vision_end_token_id": tid(VISION_END), "eos_token_id": tid(IM_END),
               "pad_token_id": tokenizer.pad_token_id}
    depth = shape.vision_depth_at(layers)
    text = dict(copy.deepcopy(dict(shape.text)), num_hidden_layers=layers, vocab_size=vocab,
                eos_token_id=ids["eos_token_id"], pad_token_id=ids["pad_token_id"],
                bos_token_id=None, tie_word_embeddings=shape.tie_word_embeddings)
    vision = dict(copy.deepcopy(dict(shape.vision)), depth=depth)
    if shape.arch == QWEN2_5_VL:
        text["max_window_layers"] = layers
        vision["fullatt_block_indexes"] = _spread_full_attention(
            shape.vision["fullatt_block_indexes"], shape.vision_depth, depth)
        from transformers import Qwen2_5_VLConfig as config_class
    else:
        vision["deepstack_visual_indexes"] = _spread_deepstack(
            shape.deepstack, shape.vision_depth, depth)
        from transformers import Qwen3VLConfig as config_class
    config = config_class(
        text_config=text, vision_config=vision,
        image_token_id=ids["image_token_id"], video_token_id=ids["video_token_id"],
        vision_start_token_id=ids["vision_start_token_id"],
        vision_end_token_id=ids["vision_end_token_id"],
        tie_word_embeddings=shape.tie_word_embeddings)
    config.dtype = dtype
    return ShapeBuild(shape, layers, depth, vocab, dtype, config)


# ---- parameter counts per component ------------------------------------------------------

COMPONENTS = ("vision_blocks", "vision_other", "language_layers", "language_other",
              "embeddings", "lm_head")


def parameter_breakdown(model) -> dict[str, int]:
    """Parameters of a Qwen2.5-VL / Qwen3-VL model by component: the vision tower's blocks and
    the rest of it (patch embedding, position embedding, mergers), the language model's
    decoder layers and the rest (final norm), the input embedding and the output head (0 when
    tied to the embedding). Each parameter is counted once."""
    counts = dict.fromkeys(COMPONENTS, 0)
    for name, param in model.named_parameters():  # tied parameters are listed once
        n = param.numel()
        if "visual." in name:
            counts["vision_blocks" if ".blocks." in name else "vision_other"] += n
        elif "embed_tokens" in name:
            counts["embeddings"] += n
        elif name.startswith("lm_head"):
            counts["lm_head"] += n
        elif ".layers." in name:
            counts["language_layers"] += n
        else:
            counts["language_other"] += n
    return counts


def extrapolate_parameters(breakdown: dict[str, int], build: ShapeBuild) -> dict[str, int]:
    """The full-depth parameter counts of ``build``'s shape from a cut model's
    ``breakdown`` (blocks and layers scaled by depth), with and without our added rows:
    ``total`` (as built: the published vocabulary plus ours) and ``published_total`` (our
    rows taken off again: comparable with the published checkpoint)."""
    shape = build.shape
    full = dict(breakdown)
    full["vision_blocks"] = breakdown["vision_blocks"] * shape.vision_depth // build.vision_depth
    full["language_layers"] = breakdown["language_layers"] * shape.num_layers // build.layers
    total = sum(full[c] for c in COMPONENTS)
    hidden = int(shape.text["hidden_size"])
    matrices = 1 if shape.tie_word_embeddings else 2
    added_rows = build.vocab_size - shape.published_vocab
    return {**full, "total": total, "published_total": total - matrices * hidden * added_rows}
