"""A byte-level BPE tokenizer trained locally on the project's own text.

Real Qwen2.5-VL checkpoints bring their own 150k-token vocabulary; the tiny and
small presets cannot download it, and do not need it: they only ever read the
prompt templates and write driving explanations. So we train a small byte-level
BPE (the same family as Qwen2's tokenizer: GPT-2 byte alphabet, no unknown token)
with the ``tokenizers`` library, then add

* the Qwen2.5-VL chat and vision tokens as special tokens, and
* the output delimiters (and, later, trajectory tokens) as non-special added
  tokens, so vLLM's detokeniser keeps them in the generated text.
"""

from __future__ import annotations

from collections.abc import Iterable

from vla.model.chat_template import QWEN2_VL_CHAT_TEMPLATE
from vla.model.special_tokens import (
    ENDOFTEXT,
    IM_END,
    IMAGE_PAD,
    OUTPUT_DELIMITERS,
    QWEN_SPECIAL_TOKENS,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
)
from vla.resources import resource_dir

# Driving vocabulary the tokenizer should see even before any data set exists.
_SEED_CORPUS = (
    "The lead vehicle's brake lights came on between frame 1 and frame 2 and the gap "
    "shrank from 31 m to 24 m, so decelerate and keep the lane.",
    "A vehicle in the left lane is cutting in ahead of the ego vehicle; slow down to open the gap.",
    "The road ahead is free, so accelerate to the speed limit and keep the lane.",
    "A stalled car blocks the right lane 40 m ahead: change lane left when the gap is safe.",
    "Yield at the roundabout entry to the vehicle approaching from the left, then merge.",
    "At the intersection the crossing vehicle has priority; stop before the junction.",
    "The slower lead vehicle drives at 18 m/s; overtake by changing lane to the left.",
    "front_left front front_right rear camera frame t=-0.5s t=0.0s ego speed heading",
    "navigation command: go straight, turn left, turn right, change lane left, change lane right",
    "meta-action: accelerate, keep speed, decelerate, stop; keep lane, change lane left, "
    "change lane right, turn left, turn right",
)


def project_corpus() -> list[str]:
    """Text the tokenizer is trained on: prompt templates plus a driving seed corpus."""
    texts = list(_SEED_CORPUS)
    prompts = resource_dir("prompts")
    templates = [p for p in sorted(prompts.glob("**/*"))
                 if p.is_file() and p.suffix in (".txt", ".jinja")]
    texts += [p.read_text() for p in templates]
    # Digits and decimals appear in every explanation; make sure they merge sensibly.
    texts += [f"{i} m {i}.{j} m/s {i}.{j}s" for i in range(0, 120) for j in (0, 5)]
    return texts


def train_tokenizer(corpus: Iterable[str], vocab_size: int, extra_tokens: Iterable[str] = (),
                    with_delimiters: bool = True):
    """Train a byte-level BPE and wrap it as a transformers fast tokenizer.

    ``extra_tokens`` (e.g. trajectory tokens) are appended after the output delimiters,
    as non-special tokens, each a single id. ``with_delimiters=False`` builds a plain
    base tokenizer, like a real checkpoint's before ``vla model inject``.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    delimiters = OUTPUT_DELIMITERS if with_delimiters else ()
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t in (*delimiters, *extra_tokens)])

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
        extra_special_tokens={
            "image_token": IMAGE_PAD,
            "video_token": VIDEO_PAD,
            "vision_bos_token": VISION_START,
            "vision_eos_token": VISION_END,
        },
    )
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tokenizer
