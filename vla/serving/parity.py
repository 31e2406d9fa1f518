"""Parity of the served model with transformers: the end-to-end check that the installed
stack really works on this machine.

Used by ``vla demo`` (the serving stage) and by the smoke tests: build inputs for a saved
Qwen2.5-VL, run a transformers forward pass, and ask a running vLLM server the same question
with the images sent as data URIs. The two sides must see the same prompt tokens (same chat
template, same image expansion) and give the same log-probability to the first token the
server generated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from vla.serving.chat import user_message
from vla.serving.urls import api_base

SMOKE_PROMPT = "Two cameras. What should the ego vehicle do next, and why?"


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


@dataclass
class ForwardResult:
    prompt_ids: list[int]
    image_tokens: int
    logprobs: np.ndarray  # log-softmax over the vocabulary at the last prompt position
    seconds: float


def hf_forward(model_dir: str | Path, images, text: str = SMOKE_PROMPT,
               device: str = "cpu", dtype: str = "float32") -> ForwardResult:
    """One transformers forward pass of the saved model on ``images`` + ``text``."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        model_dir, dtype=getattr(torch, dtype)).to(device)
    model.eval()
    messages = [user_message(images, text, openai_format=False)]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[prompt], images=list(images), return_tensors="pt").to(device)
    start = time.perf_counter()
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1].float().cpu()
    seconds = time.perf_counter() - start
    ids = inputs["input_ids"][0].tolist()
    return ForwardResult(
        prompt_ids=ids,
        image_tokens=sum(i == model.config.image_token_id for i in ids),
        logprobs=torch.log_softmax(logits.double(), -1).numpy(),
        seconds=seconds,
    )


def query_server(url: str, model_name: str, images, text: str = SMOKE_PROMPT,
                 max_tokens: int = 8, api_key: str | None = None, timeout_s: float = 120.0):
    """Greedy chat completion from a vLLM server, with token ids and logprobs returned."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {
        "model": model_name,
        "messages": [user_message(images, text, openai_format=True)],
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
