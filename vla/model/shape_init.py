"""``vla model init --shape NAME [--layers N]``: a saved model directory of an exact shape
(:mod:`vla.model.shapes`) with random weights.

It holds the same files as ``vla model init --preset`` (:func:`vla.model.build.init_model`):
config and weights, tokenizer and processor, the trajectory codec and ``vla_model.json``, so
that :func:`vla.model.loading.load_model_dir`, a LoRA adapter and vLLM take it like any
other. The tokenizer is our own small byte-level BPE (a few thousand entries) while the
embedding has the published vocabulary plus our added rows: the tokenizer's ids are a subset
of the rows, and the output grammar never writes the rows past it.

The directory's preset (in ``vla_model.json`` and for the processor) carries the image budget
of the architecture's ``small`` preset (the default rig's 224×112 images kept at their size)
and the shape's sizes; the model itself is the shape's config, DeepStack included.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from vla.model.shapes import (
    DEFAULT_CODEBOOK,
    QWEN2_5_VL,
    ShapeBuild,
    build_shape,
    get_shape,
)

TOKENIZER_VOCAB = 4096  # the BPE trainer's target, before the added tokens


def shape_preset(build: ShapeBuild, codebook_size: int):
    """A :class:`vla.model.presets.ModelPreset` for ``build``'s processor and metadata: the
    shape's sizes at its cut depth, the architecture's ``small`` image budget. DeepStack
    layers are left out of it (a 1-layer cut has more of them than language layers, which a
    preset refuses); the model's config, not the preset, holds them."""
    from vla.model.presets import PRESETS_BY_ARCH

    shape = build.shape
    text, vision = shape.text, shape.vision
    budget = PRESETS_BY_ARCH[shape.arch]["small"]
    return dataclasses.replace(
        budget, name=shape.name, vocab_size=TOKENIZER_VOCAB,
        hidden_size=text["hidden_size"], intermediate_size=text["intermediate_size"],
        num_layers=build.layers, num_heads=text["num_attention_heads"],
        num_kv_heads=text["num_key_value_heads"], vision_hidden_size=vision["hidden_size"],
        vision_intermediate_size=vision["intermediate_size"], vision_depth=build.vision_depth,
        vision_heads=vision["num_heads"], patch_size=shape.patch_size,
        vision_window_px=vision.get("window_size", budget.vision_window_px),
        codebook_size=codebook_size, deepstack_layers=(),
        **({} if shape.arch == QWEN2_5_VL else {"vision_position_grid": int(
            vision["num_position_embeddings"] ** 0.5)}))


def init_shape(name: str, out_dir: str | Path, layers: int | None = None, seed: int = 0,
               data_dir: str | Path | None = None, dtype: str = "bfloat16",
               codebook_size: int | None = None) -> Path:
    """Fit the codec, train the tokenizer, build shape ``name`` cut to ``layers`` with random
    weights in ``dtype`` and save everything to ``out_dir`` (as
    :func:`vla.model.build.init_model` does for a preset)."""
    from vla.model.build import (
        CODEC_DIR,
        VLA_META_FILE,
        build_processor,
        fit_default_codec,
        save_model,
    )
    from vla.model.tokenizer import project_corpus, train_tokenizer
    from vla.model.trajectory_tokens import trajectory_tokens

    get_shape(name)  # an unknown name fails before the slow steps
    codebook_size = DEFAULT_CODEBOOK if codebook_size is None else codebook_size
    codec = fit_default_codec(data_dir, seed=seed, codebook_size=codebook_size)
    corpus = project_corpus()
    if data_dir is not None:
        from datasets import load_from_disk

        corpus += list(load_from_disk(str(data_dir))["train"]["reasoning"])
    tokenizer = train_tokenizer(corpus, TOKENIZER_VOCAB,
                                extra_tokens=trajectory_tokens(codec.vocab_size))
    build = build_shape(name, layers, dtype=dtype, tokenizer=tokenizer,
                        codebook_size=codec.vocab_size)
    preset = shape_preset(build, codec.vocab_size)
    processor = build_processor(preset, tokenizer)
    model = build.instantiate("cpu", seed=seed)
    out = save_model(model, processor, preset, out_dir)
    codec.save(out / CODEC_DIR)
    meta_path = out / VLA_META_FILE
    meta = json.loads(meta_path.read_text())
    meta.update(shape=name, source=build.shape.source, layers=build.layers,
                vision_depth=build.vision_depth, dtype=dtype, vocab_size=build.vocab_size,
                tokenizer_size=len(tokenizer), codec=codec.name,
                trajectory_tokens=codec.num_tokens, codec_vocab=codec.vocab_size)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return out
