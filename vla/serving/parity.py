"""Parity of the served model with transformers: the end-to-end check that the installed
stack really works on this machine.

Used by ``vla demo`` (the serving stage) and by the smoke tests: build inputs for a saved
Qwen2.5-VL or Qwen3-VL, run a transformers forward pass, and ask a running vLLM server the
same question with the frames sent as data URIs. The frames are one camera's, 0.5 s apart,
and go to both engines as videos of :data:`vla.model.visual_inputs.TEMPORAL_PATCH` frames,
as the cameras of a sample do (``frames_per_video=1``: as still images). The two sides must
see the same prompt tokens (same chat template, same image and video expansion) and give the
same log-probability to the first token the server generated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from vla.model.visual_inputs import TEMPORAL_PATCH, CameraImage, CameraVideo
from vla.serving.chat import user_message
from vla.serving.urls import api_base

SMOKE_PROMPT = "One camera, two frames. What should the ego vehicle do next, and why?"
SMOKE_FRAME_GAP_S = 0.5  # between consecutive synthetic frames: the servers' default 2 fps


def synthetic_camera_images(n: int, height: int = 112, width: int = 112, seed: int = 0):
    """``n`` camera-like RGB images: sky, road with lane markings, a box for a vehicle."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        img = np.zeros((height, width, 3), np.uint8)
        horizon = height // 2
        img[:horizon] = (110, 160, 220)
        img[horizon:] = (70, 70, 75)
        for x in (width // 3, 2 * width // 3):
            img[horizon:, x - 1:x + 1] = (235, 235, 235)
        w, h = rng.integers(width // 8, width // 4), rng.integers(height // 10, height // 5)
        x0 = int(rng.integers(0, width - w))
        y0 = int(rng.integers(horizon, height - h))
        img[y0:y0 + h, x0:x0 + w] = rng.integers(0, 255, 3)
        img[y0 + h - 3:y0 + h, x0:x0 + 3] = (255, 20, 20)  # brake lights
        img[y0 + h - 3:y0 + h, x0 + w - 3:x0 + w] = (255, 20, 20)
        images.append(img)
    return images


def smoke_media(images, frames_per_video: int = TEMPORAL_PATCH) -> list:
    """``images`` (frames, oldest first) as the prompt's media: each run of
    ``frames_per_video`` consecutive frames one video (1: each frame a still image)."""
    from PIL import Image

    if frames_per_video < 1 or len(images) % frames_per_video:
        raise ValueError(f"{len(images)} frames do not make videos of {frames_per_video} frames")
    frames = [im if isinstance(im, Image.Image) else Image.fromarray(im) for im in images]
    if frames_per_video == 1:
        return [CameraImage("synthetic", 0.0, frame) for frame in frames]
    times = tuple(SMOKE_FRAME_GAP_S * (k - frames_per_video + 1) for k in range(frames_per_video))
    return [CameraVideo("synthetic", times, tuple(frames[i:i + frames_per_video]))
            for i in range(0, len(frames), frames_per_video)]


@dataclass
class ForwardResult:
    prompt_ids: list[int]
    image_tokens: int  # image and video tokens
    logprobs: np.ndarray  # log-softmax over the vocabulary at the last prompt position
    seconds: float


def hf_forward(model_dir: str | Path, images, text: str = SMOKE_PROMPT,
               device: str = "cpu", dtype: str = "float32",
               frames_per_video: int = TEMPORAL_PATCH) -> ForwardResult:
    """One transformers forward pass of the saved model on ``images`` (frames, as
    :func:`smoke_media` groups them) + ``text``."""
    import torch
    from transformers import AutoProcessor

    from vla.model.arch import load_pretrained
    from vla.model.visual_inputs import processor_inputs

    processor = AutoProcessor.from_pretrained(model_dir)
    model = load_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device)
    model.eval()
    media = smoke_media(images, frames_per_video)
    messages = [user_message(media, text, openai_format=False)]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor_inputs(processor, [prompt], [media]).to(device)
    start = time.perf_counter()
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1].float().cpu()
    seconds = time.perf_counter() - start
    ids = inputs["input_ids"][0].tolist()
    return ForwardResult(
        prompt_ids=ids,
        image_tokens=sum(i in (model.config.image_token_id, model.config.video_token_id)
                         for i in ids),
        logprobs=torch.log_softmax(logits.double(), -1).numpy(),
        seconds=seconds,
    )


def query_server(url: str, model_name: str, images, text: str = SMOKE_PROMPT,
                 max_tokens: int = 8, api_key: str | None = None, timeout_s: float = 120.0,
                 frames_per_video: int = TEMPORAL_PATCH):
    """Greedy chat completion from a vLLM server on ``images`` (frames, as
    :func:`smoke_media` groups them) + ``text``, with token ids and logprobs returned."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    media = smoke_media(images, frames_per_video)
    body = {
        "model": model_name,
        "messages": [user_message(media, text, openai_format=True)],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "logprobs": True,
        "return_token_ids": True,
        "skip_special_tokens": False,
    }
    response = httpx.post(f"{api_base(url)}/chat/completions", json=body, headers=headers,
                          timeout=timeout_s)
    response.raise_for_status()
    return response.json()
