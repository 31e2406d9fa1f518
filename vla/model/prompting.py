"""Fill the prompt templates in ``prompts/`` from a sample.

The user turn interleaves, for each image in order (frames oldest first, cameras in
their configured order), a line naming the camera and the frame time, then the image;
then the ego history, the speed, the navigation command and the instruction. The
assistant target is the label: reasoning, meta-action, trajectory tokens, with the
output delimiters of Alpamayo-R1.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from vla.model.trajectory_tokens import trajectory_token
from vla.resources import resource_path

HISTORY_ROWS = 5  # history rows quoted in the prompt (every 0.5 s over 2 s)


@cache
def template(name: str) -> str:
    """The text of the prompt template ``prompts/<name>.txt``, without surrounding newlines."""
    return resource_path(f"prompts/{name}.txt").read_text().strip("\n")


def quoted_history(history) -> np.ndarray:
    """The history rows the prompt quotes (x, y, yaw, speed; every 0.5 s, the last is now)."""
    rows = np.asarray(history, float)
    if rows.ndim != 2 or rows.shape[1] < 4:
        raise ValueError(f"history must be (N, 4): x, y, yaw, speed; got shape {rows.shape}")
    step = max(1, (len(rows) - 1) // (HISTORY_ROWS - 1))
    return rows[::-1][::step][:HISTORY_ROWS][::-1, :4]


def format_history(history) -> str:
    return "; ".join(f"({x:.1f}, {y:.1f}, {v:.1f})" for x, y, _yaw, v in quoted_history(history))


def accel_trend(accel: float) -> str:
    """The acceleration in words, so that a small model reads the sign without arithmetic."""
    if accel <= -3.0:
        return "braking hard"
    if accel <= -0.5:
        return "slowing down"
    if accel >= 0.5:
        return "speeding up"
    return "steady"


def user_content(sample: dict, images: list, image_part) -> list[dict]:
    """Content parts of the user turn; ``image_part(image)`` makes one image part."""
    names, times = sample["camera_names"], sample["frame_times"]
    if not (len(images) == len(names) == len(times)):
        raise ValueError(f"sample {sample.get('sample_id')}: {len(images)} images but "
                         f"{len(names)} camera names and {len(times)} frame times")
    accel = float(sample.get("ego_accel") or 0.0)
    yaw_rate = float(sample.get("ego_yaw_rate") or 0.0)
    head, tail = template("user").split("{images}")
    parts: list[dict] = [{"type": "text", "text": head}]
    for image, name, time in zip(images, names, times, strict=True):
        parts.append({"type": "text", "text": "\n" + template("image").format(
            camera=name, time=f"{time:+.1f}")})
        parts.append(image_part(image))
    parts.append({"type": "text", "text": tail.format(
        history=format_history(sample["history"]), speed=f"{sample['ego_speed']:.1f}",
        accel=f"{accel:+.1f}", trend=accel_trend(accel), yaw_rate=f"{yaw_rate:+.2f}",
        command=sample["command"].replace("_", " "))})
    return parts


def assistant_target(reasoning: str, longitudinal: str, lateral: str, ids) -> str:
    return template("assistant").format(
        reasoning=reasoning, longitudinal=longitudinal, lateral=lateral,
        trajectory="".join(trajectory_token(int(i)) for i in ids))


def chat_prompt(processor, sample: dict, images: list) -> str:
    """The prompt text for transformers (image placeholders), up to the assistant's turn."""
    chat = messages(sample, images, lambda _im: {"type": "image"})
    return processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)


def messages(sample: dict, images: list, image_part, target: str | None = None) -> list[dict]:
    out = [{"role": "system", "content": [{"type": "text", "text": template("system")}]},
           {"role": "user", "content": user_content(sample, images, image_part)}]
    if target is not None:
        out.append({"role": "assistant", "content": [{"type": "text", "text": target}]})
    return out
