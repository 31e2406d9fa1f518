"""Fill the prompt templates in ``prompts/`` from a sample.

The user turn gives the cameras as :mod:`vla.model.visual_inputs` groups them: for each
camera (in rig order) a line naming it and its frame times, then its frames as one video;
or, when the cameras' frame count does not fill whole temporal patches (a 1-frame rig), for
each image in order (frames oldest first, cameras in their configured order) a line naming
the camera and the frame time, then the image. Then come the ego history, the speed, the
navigation command and the instruction. :class:`MediaParts` turns each image or video into
a chat content part: placeholders for a transformers processor, data URIs for a server. The
assistant target is the label: reasoning, meta-action, trajectory tokens, with the output
delimiters of Alpamayo-R1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from vla.model.trajectory_tokens import trajectory_token
from vla.model.visual_inputs import CameraVideo, visual_inputs
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


HIDDEN = "not given"


def hide_kinematics(sample: dict) -> dict:
    """The sample with the ego's own motion (history, speed, acceleration, yaw rate) left out
    of its prompt: the history reads :data:`HIDDEN`, the numbers "?" (training's kinematics
    dropout)."""
    return {**sample, "kinematics_hidden": True}


def accel_trend(accel: float) -> str:
    """The acceleration in words, so that a small model reads the sign without arithmetic."""
    if accel <= -3.0:
        return "braking hard"
    if accel <= -0.5:
        return "slowing down"
    if accel >= 0.5:
        return "speeding up"
    return "steady"


@dataclass(frozen=True)
class MediaParts:
    """How the prompt's media become chat content parts: ``image(frame)`` for a still image,
    ``video(frames)`` for one camera's frames (oldest first) as one video."""

    image: Callable[[object], dict]
    video: Callable[[Sequence], dict]


# for a transformers processor: its chat template turns these into vision placeholders
PLACEHOLDER_PARTS = MediaParts(image=lambda _frame: {"type": "image"},
                               video=lambda _frames: {"type": "video"})


def format_frame_times(times: Sequence[float]) -> str:
    """A video's frame times in words, oldest first: ``-0.5 s and +0.0 s``."""
    words = [f"{t:+.1f} s" for t in times]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def user_content(sample: dict, images: list, parts: MediaParts) -> list[dict]:
    """Content parts of the user turn (``images``: the sample's, in its order)."""
    accel = float(sample.get("ego_accel") or 0.0)
    yaw_rate = float(sample.get("ego_yaw_rate") or 0.0)
    head, tail = template("user").split("{images}")
    content: list[dict] = [{"type": "text", "text": head}]
    for item in visual_inputs(sample, images):
        if isinstance(item, CameraVideo):
            line = template("video").format(camera=item.camera,
                                            times=format_frame_times(item.times))
            content += [{"type": "text", "text": "\n" + line}, parts.video(list(item.frames))]
        else:
            line = template("image").format(camera=item.camera, time=f"{item.time:+.1f}")
            content += [{"type": "text", "text": "\n" + line}, parts.image(item.image)]
    if sample.get("kinematics_hidden"):
        motion = dict(history=HIDDEN, speed="?", accel="?", trend=HIDDEN, yaw_rate="?")
    else:
        motion = dict(history=format_history(sample["history"]),
                      speed=f"{sample['ego_speed']:.1f}", accel=f"{accel:+.1f}",
                      trend=accel_trend(accel), yaw_rate=f"{yaw_rate:+.2f}")
    content.append({"type": "text", "text": tail.format(
        **motion, command=sample["command"].replace("_", " "))})
    return content


def assistant_target(reasoning: str, longitudinal: str, lateral: str, ids) -> str:
    return template("assistant").format(
        reasoning=reasoning, longitudinal=longitudinal, lateral=lateral,
        trajectory="".join(trajectory_token(int(i)) for i in ids))


def chat_prompt(processor, sample: dict, images: list) -> str:
    """The prompt text for transformers (image and video placeholders), up to the
    assistant's turn."""
    chat = messages(sample, images, PLACEHOLDER_PARTS)
    return processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)


def messages(sample: dict, images: list, parts: MediaParts,
             target: str | None = None) -> list[dict]:
    """The chat: system turn, user turn (media through ``parts``), and the assistant's
    ``target`` when given."""
    out = [{"role": "system", "content": [{"type": "text", "text": template("system")}]},
           {"role": "user", "content": user_content(sample, images, parts)}]
    if target is not None:
        out.append({"role": "assistant", "content": [{"type": "text", "text": target}]})
    return out
