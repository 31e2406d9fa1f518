"""OpenAI chat messages carrying camera images as data URIs."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image


def image_data_uri(image: Image.Image | np.ndarray, fmt: str = "PNG") -> str:
    """Encode an RGB image (PIL or HxWx3 uint8 array) as a ``data:`` URI."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 array, got shape {image.shape} "
                             f"dtype {image.dtype}")
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt)
    mime = f"image/{fmt.lower()}"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def user_message(images: Sequence[Image.Image | np.ndarray], text: str,
                 openai_format: bool = True) -> dict:
    """One user turn: the images in order, then the text.

    ``openai_format`` gives ``image_url`` parts with data URIs (for the server);
    otherwise ``{"type": "image"}`` placeholders (for a transformers processor).
    """
    if openai_format:
        parts = [{"type": "image_url", "image_url": {"url": image_data_uri(im)}} for im in images]
    else:
        parts = [{"type": "image"} for _ in images]
    return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}
