"""OpenAI chat messages carrying camera frames as data URIs: still images and videos.

A still image is an ``image_url`` part with a PNG data URI. A camera's frames as one video
are a ``video_url`` part whose URI is vLLM's frame sequence,
``data:video/jpeg;base64,<frame>,<frame>,...``: vLLM splits it at the commas and decodes each
frame with PIL whatever its format, so the frames travel as lossless PNG like the still
images. vLLM reads every such video at the frame rate its server was started with
(``--media-io-kwargs``, :class:`vla.serving.vllm_server.ServerConfig`'s ``video_fps``; vLLM's
own default is 1 frame per second, and a request may not set it unless the server trusts its
clients), the rate that spaces a video's temporal patches in M-RoPE as transformers does.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from vla.model.prompting import PLACEHOLDER_PARTS, MediaParts
from vla.model.visual_inputs import CameraImage, CameraVideo


def _encoded(image: Image.Image | np.ndarray, fmt: str = "PNG") -> str:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 array, got shape {image.shape} "
                             f"dtype {image.dtype}")
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_data_uri(image: Image.Image | np.ndarray, fmt: str = "PNG") -> str:
    """Encode an RGB image (PIL or HxWx3 uint8 array) as a ``data:`` URI."""
    return f"data:image/{fmt.lower()};base64,{_encoded(image, fmt)}"


def video_data_uri(frames: Sequence[Image.Image | np.ndarray]) -> str:
    """Encode frames (oldest first) as vLLM's frame-sequence ``data:video/jpeg`` URI, each
    frame a base64 PNG (lossless; vLLM decodes every frame with PIL)."""
    if not frames:
        raise ValueError("a video needs at least one frame")
    return "data:video/jpeg;base64," + ",".join(_encoded(frame) for frame in frames)


# for the server: every image and video inline as a data URI
DATA_URI_PARTS = MediaParts(
    image=lambda frame: {"type": "image_url", "image_url": {"url": image_data_uri(frame)}},
    video=lambda frames: {"type": "video_url", "video_url": {"url": video_data_uri(frames)}})


def user_message(media: Sequence[CameraImage | CameraVideo], text: str,
                 openai_format: bool = True) -> dict:
    """One user turn: the media in order (still images and videos), then the text.

    ``openai_format`` gives ``image_url`` / ``video_url`` parts with data URIs (for the
    server); otherwise ``{"type": "image"}`` / ``{"type": "video"}`` placeholders (for a
    transformers processor).
    """
    parts: MediaParts = DATA_URI_PARTS if openai_format else PLACEHOLDER_PARTS
    content = [parts.video(list(item.frames)) if isinstance(item, CameraVideo)
               else parts.image(item.image) for item in media]
    return {"role": "user", "content": [*content, {"type": "text", "text": text}]}
