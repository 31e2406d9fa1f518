"""Token strings the model and its tokenizer must agree on.

The Qwen2.5-VL chat and vision tokens are the ones transformers' and vLLM's
Qwen2.5-VL processors look for. The output delimiters follow Alpamayo-R1 and are
added as *non-special* tokens, so that vLLM's detokeniser keeps them in the text.
"""

from __future__ import annotations

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
VISION_PAD = "<|vision_pad|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"

QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    ENDOFTEXT,
    IM_START,
    IM_END,
    VISION_START,
    VISION_END,
    VISION_PAD,
    IMAGE_PAD,
    VIDEO_PAD,
)

COT_START = "<|cot_start|>"
COT_END = "<|cot_end|>"
META_ACTION_START = "<|meta_action_start|>"
META_ACTION_END = "<|meta_action_end|>"
TRAJ_FUTURE_START = "<|traj_future_start|>"
TRAJ_FUTURE_END = "<|traj_future_end|>"

OUTPUT_DELIMITERS: tuple[str, ...] = (
    COT_START,
    COT_END,
    META_ACTION_START,
    META_ACTION_END,
    TRAJ_FUTURE_START,
    TRAJ_FUTURE_END,
)
