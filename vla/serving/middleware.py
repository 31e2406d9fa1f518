"""An HTTP middleware for vLLM's API server: refuse oversized images with 413.

Stock vLLM answers an image beyond PIL's decompression-bomb limit with a 500, after
having started to decode it. ``vla serve`` passes this function with
``--middleware vla.serving.middleware.reject_oversized_images``: it reads the image
parts of a chat request and the frames of its video parts (vLLM's comma-separated frame
sequences), looks at each data URI's size and image header (no full decode), and answers
413 with a message naming the image when one is too large.
Anything else (including malformed requests) goes on to vLLM unchanged.
"""

from __future__ import annotations

import base64
import binascii
import io
import json

MAX_IMAGE_BYTES = 16 * 1024 * 1024
MAX_IMAGE_SIDE = 4096


def oversized_image(body: bytes) -> str | None:
    """A message if the chat request carries an image (or video frame) that is too large,
    else None."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list):
        return None
    index = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("image_url", "video_url"):
                continue
            url = (part.get(kind) or {}).get("url", "")
            if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
                index += 1
                continue
            frames = url.split(",")[1:] if kind == "video_url" else [url.split(",", 1)[1]]
            for encoded in frames:
                index += 1
                problem = _oversized(encoded, index)
                if problem is not None:
                    return problem
    return None


def _oversized(encoded: str, index: int) -> str | None:
    """A message if the base64 image ``encoded`` (the request's ``index``-th) is too large."""
    from PIL import Image

    if len(encoded) * 3 // 4 > MAX_IMAGE_BYTES:
        return f"image {index}: more than {MAX_IMAGE_BYTES} bytes"
    try:
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=False))) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        return f"image {index}: too many pixels to decode safely"
    except (binascii.Error, OSError, ValueError):
        return None  # not an image: vLLM answers 400 itself
    if max(width, height) > MAX_IMAGE_SIDE:
        return f"image {index}: {width}x{height} pixels, larger than {MAX_IMAGE_SIDE} on a side"
    return None


async def reject_oversized_images(request, call_next):
    if request.method == "POST" and request.url.path.endswith("/chat/completions"):
        body = await request.body()
        problem = oversized_image(body)
        if problem is not None:
            from starlette.responses import JSONResponse

            return JSONResponse(status_code=413, content={"error": {
                "message": problem, "type": "RequestEntityTooLarge", "code": 413}})
    return await call_next(request)
