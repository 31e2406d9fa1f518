"""Action-token injection for a real checkpoint: ``vla model inject --base DIR --out DIR2``.

Loads a Qwen2.5-VL (Cosmos-Reason1-7B or any Qwen2.5-VL) or a Qwen3-VL (Cosmos-Reason2 or
any Qwen3-VL) from a local folder (:mod:`vla.model.arch`; a checkpoint of another
``model_type`` is refused, naming it), fits the default trajectory codec (on a data set's
train split, or on synthetic trajectories), adds the output delimiters and one token per
codec id as *non-special* tokens (so that vLLM's detokeniser keeps them), grows the
embedding and output matrices, and saves a new base with the codec beside it. Stage 1 of
training then teaches the new rows: from ``first_new_id`` (recorded in ``vla_model.json``)
on, which is below the checkpoint's old embedding size when its embedding has padding rows
past its tokenizer, as Qwen's have (the first added tokens take those rows, which are
re-initialised like the grown ones).

Initialisation: new input and output rows are drawn from a normal distribution with
the mean and covariance of the existing rows (transformers' ``mean_resizing``), so the
new tokens start "average" instead of dominating or vanishing in the softmax. Existing
rows are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from vla.model.arch import arch_of_dir, architecture, model_class
from vla.model.build import CODEC_DIR, VLA_META_FILE, fit_default_codec
from vla.model.special_tokens import OUTPUT_DELIMITERS
from vla.model.trajectory_tokens import trajectory_tokens


def _reinit_padding_rows(model, start: int, stop: int) -> None:
    """Rows ``[start, stop)``: ids our added tokens took among the checkpoint's padding rows
    (a real checkpoint's embedding is larger than its tokenizer: Qwen2.5-VL's 152,064 rows
    for 151,665 tokens), which resizing leaves as they were. They get what resizing gives new
    rows: the mean of the rows before ``start``, plus noise of a thousandth of their spread
    per dimension so that no two start identical (transformers' ``mean_resizing`` samples
    around the mean with a covariance shrunk 1e9-fold: the same idea)."""
    import torch

    if stop <= start:
        return
    weights = {m.weight.data_ptr(): m.weight for m in (model.get_input_embeddings(),
                                                       model.get_output_embeddings())
               if m is not None}  # tied embeddings: one tensor
    for param in weights.values():
        weight = param.data
        old = weight[:start].float()
        noise = torch.randn(stop - start, weight.shape[1]) * old.std(0) * 1e-3
        weight[start:stop] = (old.mean(0) + noise).to(weight.dtype)


def inject(base: str | Path, out: str | Path, data_dir: str | Path | None = None,
           seed: int = 0, arch: str | None = None) -> dict:
    """Inject the output delimiters and trajectory tokens into the checkpoint ``base`` and
    save the new base to ``out``; returns its metadata. ``arch`` (a name of
    :data:`vla.model.arch.ARCHITECTURES`), when given, is the architecture ``base`` must
    hold: a checkpoint of the other one is refused, naming its ``model_type``."""
    import torch
    from tokenizers import AddedToken
    from transformers import AutoProcessor

    base, out = Path(base), Path(out)
    found = arch_of_dir(base)  # refuses a model_type of no supported architecture
    if arch is not None and found != architecture(arch).name:
        raise ValueError(f"{base} holds a {found} checkpoint (model_type {found!r}), "
                         f"not {arch}")
    processor = AutoProcessor.from_pretrained(base)
    tokenizer = processor.tokenizer
    model = model_class(found).from_pretrained(base, dtype=torch.float32)
    old_vocab = model.get_input_embeddings().weight.shape[0]
    codec = fit_default_codec(data_dir, seed=seed)
    new_tokens = [t for t in (*OUTPUT_DELIMITERS, *trajectory_tokens(codec.vocab_size))
                  if t not in tokenizer.get_vocab()]
    added = tokenizer.add_tokens([AddedToken(t, special=False, normalized=False)
                                  for t in new_tokens])
    first_new = min(tokenizer.convert_tokens_to_ids(new_tokens), default=len(tokenizer))
    torch.manual_seed(seed)
    model.resize_token_embeddings(max(len(tokenizer), old_vocab), mean_resizing=True)
    _reinit_padding_rows(model, first_new, min(old_vocab, len(tokenizer)))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    codec.save(out / CODEC_DIR)
    meta = {"preset": None, "arch": found, "injected_from": str(base), "added_tokens": added,
            "vocab_before": old_vocab, "first_new_id": first_new,
            "vocab_after": model.get_input_embeddings().weight.shape[0],
            "parameters": sum(p.numel() for p in model.parameters()), "codec": codec.name,
            "trajectory_tokens": codec.num_tokens, "codec_vocab": codec.vocab_size}
    (out / VLA_META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta
