"""What the model sees from the simulator: the cameras rendered from an episode's state, the
ego history in the ego frame, its speed, acceleration, yaw rate and the command.

Shared by the data set builder (:mod:`vla.data.samples`, from a finished episode's log) and
the simulator environment (:mod:`vla.sim.env`, from the live state), so that a closed-loop
model sees exactly what it was trained on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vla.render.camera import CAMERA_PRESETS, camera_specs, render_cameras
from vla.render.scene import BRAKING_ACCEL, AgentBox, RoadGeometry
from vla.render.topdown import render_topdown
from vla.sim.frames import to_ego
from vla.sim.world import DT, SIM_HZ, EpisodeLog

# Image sides are whole merged vision tokens: Qwen2.5-VL's 14-pixel patches merged 2 x 2 make
# one language token per 28 x 28 pixels, so a side of a multiple of 28 reaches the model
# unscaled and without a partial token.
IMAGE_SIDE_MULTIPLE = 28
MAX_IMAGE_SIDE = 1008


@dataclass(frozen=True)
class SampleConfig:
    """What each sample holds. Validated on construction.

    The default camera rig follows Alpamayo-R1's front cameras: a 120° wide and a 30°
    telephoto camera looking ahead, with the 90° cameras at ±60° for the sides, each
    224x112 px (8x4 = 32 vision tokens), two frames 0.5 s apart.

    ``horizon_row`` (fraction of the image height, from the top, at which the level cameras
    see the horizon) is 0.25: one 28-pixel token row of sky instead of half the image. A
    car's roof (1.6 m) is only 0.1 m above the cameras (1.5 m up), so at a distance d it
    shows 0.1 f / d pixels above the horizon: with the telephoto's focal length f = 418 px
    (112 px / tan 15°) that is 4.2 px at 10 m and 0.7 px at 60 m, well inside the 28 rows
    above the horizon (any horizon_row above 0.04 would keep it). Below the horizon, the
    telephoto then sees the road from f * 1.5 m / 84 px = 7.5 m on (from 11.2 m at 0.5,
    which cut off the wheels of a car 10 m ahead), the 90° cameras from 2.0 m and the wide
    one from 1.2 m. 0.5 is the earlier look (the horizon across the middle).
    """

    cameras: tuple[str, ...] = ("front_left", "front_wide", "front_tele", "front_right")
    frames: int = 2
    frame_gap_s: float = 0.5
    image_width: int = 224
    image_height: int = 112
    horizon_row: float = 0.25
    keyframe_every_s: float = 0.5
    history_s: float = 2.0
    horizon_s: float = 6.0
    topdown: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if len(self.cameras) < 1:
            raise ValueError("at least one camera is needed")
        for name in self.cameras:
            if name not in CAMERA_PRESETS:
                raise ValueError(f"unknown camera {name!r}; known cameras: "
                                 f"{sorted(CAMERA_PRESETS)}")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras repeat: {self.cameras}")
        if not 1 <= self.frames <= 8:
            raise ValueError(f"frames must be in [1, 8], got {self.frames}")
        for name in ("frame_gap_s", "keyframe_every_s"):
            value = getattr(self, name)
            if value <= 0 or abs(value * SIM_HZ - round(value * SIM_HZ)) > 1e-9:
                raise ValueError(f"{name} must be a positive multiple of {DT} s, got {value}")
        if self.history_s < 1.5:
            raise ValueError(f"history_s must be >= 1.5 s, got {self.history_s}")
        if self.horizon_s < 5.0:
            raise ValueError(f"horizon_s must be >= 5 s, got {self.horizon_s}")
        if (self.frames - 1) * self.frame_gap_s > self.history_s:
            raise ValueError("frames * frame_gap_s reaches further back than history_s")
        for name in ("image_width", "image_height"):
            side = getattr(self, name)
            if (not isinstance(side, int) or not 0 < side <= MAX_IMAGE_SIDE
                    or side % IMAGE_SIDE_MULTIPLE):
                raise ValueError(
                    f"{name} must be a multiple of {IMAGE_SIDE_MULTIPLE} px (14-pixel patches "
                    f"merged 2 x 2: one vision token per 28 x 28 px) in "
                    f"[{IMAGE_SIDE_MULTIPLE}, {MAX_IMAGE_SIDE}], got {side!r}")
        if not 0.0 <= self.horizon_row <= 0.9:
            raise ValueError(f"horizon_row must be in [0, 0.9] (fraction of the image height "
                             f"from the top), got {self.horizon_row}")

    def steps(self, seconds: float) -> int:
        return int(round(seconds * SIM_HZ))


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class EpisodeRenderer:
    """Renders (and caches) the cameras and top-down view of an episode at any step."""

    def __init__(self, log: EpisodeLog, config: SampleConfig):
        self.log = log
        self.road = RoadGeometry.from_lanes(log.lanes)
        self.cameras = camera_specs(config.cameras, config.image_width, config.image_height,
                                    config.horizon_row)
        self._cache: dict[int, list[bytes]] = {}

    def boxes(self, k: int) -> tuple[AgentBox, list[AgentBox]]:
        log, out, ego = self.log, [], None
        for a in log.ids:
            x, y, yaw, _v, acc = log.state[a, k]
            if np.isnan(x):
                continue
            box = AgentBox(a, x, y, yaw, *log.size[a], bool(acc < BRAKING_ACCEL), log.kind[a])
            if a == log.ego_id:
                ego = box
            else:
                out.append(box)
        return ego, out

    def cameras_png(self, k: int) -> list[bytes]:
        if k not in self._cache:
            ego, agents = self.boxes(k)
            self._cache[k] = [png_bytes(image)
                              for image in render_cameras(self.cameras, ego, agents, self.road)]
        return self._cache[k]

    def topdown(self, k: int, trajectories=(), highlight=frozenset()) -> np.ndarray:
        ego, agents = self.boxes(k)
        return render_topdown(ego, agents, self.road, trajectories=trajectories,
                              highlight=highlight)


def observation(log: EpisodeLog, renderer: EpisodeRenderer, k0: int,
                config: SampleConfig) -> dict:
    """What the model sees at step ``k0``: camera images (frames oldest first), the ego
    history in the ego frame at ``k0``, its speed / acceleration / yaw rate and the command.

    The images are PNG parts (``{"bytes", "path"}``) as stored in the data set.
    """
    ego = log.ego_id
    history = config.steps(config.history_s)
    gap = config.steps(config.frame_gap_s)
    if k0 < history:
        raise ValueError(f"step {k0} has less than {config.history_s} s of history")
    pose = log.state[ego, k0, :3]
    frame_steps = [k0 - gap * (config.frames - 1 - f) for f in range(config.frames)]
    images, names, times = [], [], []
    for k in frame_steps:
        images += [{"bytes": b, "path": None} for b in renderer.cameras_png(k)]
        names += list(config.cameras)
        times += [round((k - k0) * DT, 2)] * len(config.cameras)
    past = log.state[ego, k0 - history:k0 + 1]
    hist = np.concatenate([to_ego(past[:, :3], pose), past[:, 3:4]], axis=1)
    yaw_rate = float((log.state[ego, k0, 2] - log.state[ego, k0 - 1, 2] + np.pi)
                     % (2 * np.pi) - np.pi) / DT
    return {"images": images, "camera_names": names, "frame_times": times,
            "history": np.round(hist, 3).tolist(),
            "ego_speed": float(log.state[ego, k0, 3]),
            "ego_accel": float(log.state[ego, k0 - 1, 4]),
            "ego_yaw_rate": yaw_rate, "command": log.route_turn}
