"""Trajectory tokens: one vocabulary entry per codec id, spelled ``<traj_{id}>``."""

from __future__ import annotations

import re

TRAJ_TOKEN_RE = re.compile(r"<traj_(\d+)>")


def trajectory_token(index: int) -> str:
    return f"<traj_{index}>"


def trajectory_tokens(vocab_size: int) -> list[str]:
    return [trajectory_token(i) for i in range(vocab_size)]
