"""What every driving-log converter shares: quaternion yaw, resampling poses to our 10 Hz grid,
the derived navigation command, fitting a camera frame to the rig's size, and one sample row
in the schema of :func:`vla.data.build.features`.

A converted sample looks like a simulator sample, with these differences:

* ``source`` names the data set (``nuscenes``, ``physicalai_av``); ``scenario`` is what the
  log says about the sample (a reasoning event, or ``log`` for a regular keyframe);
* ``future`` lasts as long as the log does: ``future_valid`` marks the real steps, and the
  steps past the end carry the last real motion on at constant speed and heading (never NaN,
  so the row stays a float list; a constant-velocity continuation, not a sudden stop, so that
  a codec encoding the whole horizon is disturbed as little as possible by the padding, whose
  tokens carry no loss anyway);
* the meta-action is derived from the logged future (:func:`vla.meta_action.derive_meta_action`),
  ``critical`` is empty and ``reasoning`` is the log's own reasoning text, or empty where the
  log has none (training then masks the span);
* the metric cache holds the annotated agents but no lanes (``"drivable": "not_available"``:
  off-road metrics are reported as not available, never as 0; a log without agent boxes says
  so too, ``"agents_annotated": false``, and collision is then not available); its reference
  path is the logged future.
"""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np

from vla.meta_action import derive_meta_action
from vla.sim.frames import to_ego, unwrap_yaw
from vla.trajectory.types import wrap_angle

HZ = 10.0
#: The navigation command of a log sample (derived, as VAD and others do): the lateral offset
#: of the logged future at ``COMMAND_AT_S`` beyond ``COMMAND_OFFSET_M`` means a turn.
COMMAND_AT_S = 3.0
COMMAND_OFFSET_M = 2.0
#: The shortest real future a converted sample keeps: the deriver's longitudinal window.
MIN_FUTURE_S = 3.0
REFERENCE_EXTENSION_M = 30.0


def quaternion_yaw(w, x, y, z) -> np.ndarray:
    """Yaw (rad, about +z) of unit quaternions ``(w, x, y, z)`` (scalars or arrays)."""
    w, x, y, z = (np.asarray(a, dtype=np.float64) for a in (w, x, y, z))
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def resample_poses(times_s: np.ndarray, poses: np.ndarray, grid_s: np.ndarray) -> np.ndarray:
    """Poses ``(N, 3: x, y, yaw)`` logged at ``times_s`` (increasing), linearly interpolated at
    ``grid_s``; yaw is unwrapped before interpolating. Grid times outside the logged span give
    NaN rows (the caller masks them): nothing is extrapolated.

    Simplification: linear interpolation between poses. At the 10-20 Hz of logged ego poses a
    car's path bends little between two of them; the error this makes is measured by the
    converters' tests against the poses themselves."""
    t = np.asarray(times_s, dtype=np.float64)
    p = np.asarray(poses, dtype=np.float64)
    if t.ndim != 1 or p.shape != (len(t), 3):
        raise ValueError(f"resample_poses needs times (N,) and poses (N, 3), got {t.shape} "
                         f"and {p.shape}")
    if len(t) < 2 or np.any(np.diff(t) <= 0):
        raise ValueError("resample_poses needs at least 2 poses at strictly increasing times")
    grid = np.asarray(grid_s, dtype=np.float64)
    yaw = np.unwrap(p[:, 2])
    out = np.stack([np.interp(grid, t, p[:, 0]), np.interp(grid, t, p[:, 1]),
                    np.interp(grid, t, yaw)], axis=-1)
    out[(grid < t[0] - 1e-9) | (grid > t[-1] + 1e-9)] = np.nan
    return out


def derive_command(future: np.ndarray, valid: np.ndarray, hz: float = HZ) -> str:
    """``turn_left`` / ``turn_right`` where the future's lateral offset at 3 s (or at its last
    real step, if shorter) is beyond ±2 m, else ``follow_road``: VAD's "go straight", in our
    command vocabulary, where ``go_straight`` means straight on through a junction, which a
    log without a map cannot tell."""
    real = np.flatnonzero(np.asarray(valid, bool))
    if real.size == 0:
        raise ValueError("derive_command needs at least one real future step")
    at = min(int(round(COMMAND_AT_S * hz)) - 1, int(real[-1]))
    lateral = float(np.asarray(future)[at, 1])
    if lateral > COMMAND_OFFSET_M:
        return "turn_left"
    if lateral < -COMMAND_OFFSET_M:
        return "turn_right"
    return "follow_road"


def fit_image(image, width: int, height: int, where: str = "") -> bytes:
    """A camera frame (encoded bytes, a PIL image or an HxWx3 uint8 array) cropped about its
    centre to the aspect ``width / height``, resized to ``width`` x ``height`` and encoded as PNG.
    A frame that cannot be decoded raises ``ValueError`` naming ``where``."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(image, bytes | bytearray):
            img = Image.open(io.BytesIO(image))
            img.load()
        elif isinstance(image, np.ndarray):
            img = Image.fromarray(np.ascontiguousarray(image))
        else:
            img = image
        img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{where or 'image'}: not a readable image ({exc})") from exc
    w, h = img.size
    target = width / height
    if w / h > target:   # too wide: crop the sides
        cw = int(round(h * target))
        box = ((w - cw) // 2, 0, (w - cw) // 2 + cw, h)
    else:                # too tall: crop top and bottom
        ch = int(round(w / target))
        box = (0, (h - ch) // 2, w, (h - ch) // 2 + ch)
    img = img.crop(box).resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclasses.dataclass
class LogSample:
    """One keyframe of a driving log, already in our conventions (ego frame at t0: x forward,
    y left, yaw counter-clockwise; 10 Hz).

    ``history``: ``(H + 1, 3)`` poses from t0 - history_s to t0 (the last row is 0, 0, 0);
    ``history_speed``: ``(H + 1,)`` speeds (m/s) at the same times; ``future``: ``(F, 3)`` poses
    at t0 + 0.1 s ... t0 + horizon, NaN rows where the log has ended; ``images``: PNG bytes,
    frame-major (every camera's oldest frame first, then the next frame), with
    ``camera_names`` and ``frame_times`` (s relative to t0) per image; ``agents``: the metric
    cache's agent list (``id``, ``class``, ``length``, ``width``, ``future``: ``[x, y, yaw]`` or
    None per future step); ``agents_annotated`` False where the log has no agent boxes at all
    (collision is then not available, rather than 0)."""

    sample_id: str
    episode_id: int
    source: str
    scenario: str
    t0: float
    images: list[bytes]
    camera_names: list[str]
    frame_times: list[float]
    history: np.ndarray
    history_speed: np.ndarray
    future: np.ndarray
    agents: list[dict]
    ego_length: float = 4.6
    ego_width: float = 1.9
    reasoning: str = ""
    road: str = "log"
    agents_annotated: bool = True

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (n == len(self.camera_names) == len(self.frame_times)) or n == 0:
            raise ValueError(f"{self.sample_id}: images, camera_names and frame_times must be "
                             f"non-empty and of one length, got {n}, {len(self.camera_names)}, "
                             f"{len(self.frame_times)}")
        self.history = np.asarray(self.history, dtype=np.float64)
        self.history_speed = np.asarray(self.history_speed, dtype=np.float64)
        self.future = np.asarray(self.future, dtype=np.float64)
        if self.history.ndim != 2 or self.history.shape[1] != 3 \
                or self.history_speed.shape != (len(self.history),):
            raise ValueError(f"{self.sample_id}: history must be (H, 3) with one speed per "
                             f"pose, got {self.history.shape} and {self.history_speed.shape}")
        if not np.isfinite(self.history).all() or not np.isfinite(self.history_speed).all():
            raise ValueError(f"{self.sample_id}: the history has gaps (NaN)")
        if self.future.ndim != 2 or self.future.shape[1] != 3:
            raise ValueError(f"{self.sample_id}: future must be (F, 3), got {self.future.shape}")


def future_valid(future: np.ndarray) -> np.ndarray:
    """Which future steps are real: the leading run of finite rows."""
    finite = np.isfinite(np.asarray(future)).all(axis=1)
    ends = np.flatnonzero(~finite)
    n = int(ends[0]) if ends.size else len(finite)
    return np.arange(len(finite)) < n


def log_metric_cache(sample: LogSample, command: str, valid: np.ndarray) -> dict:
    """The metric cache of a log sample: annotated agents, no lanes, the logged future as the
    reference path (extended straight on by 30 m, as the simulator's)."""
    path = np.vstack([[0.0, 0.0], sample.future[valid, :2]])
    if len(path) >= 2 and np.linalg.norm(path[-1] - path[-2]) > 1e-6:
        d = path[-1] - path[-2]
        path = np.vstack([path, path[-1] + d / np.linalg.norm(d) * REFERENCE_EXTENSION_M])
    return {
        "dt": 1.0 / HZ,
        "agents": sample.agents,
        "agents_annotated": sample.agents_annotated,
        "lanes": [],
        "drivable": "not_available",
        "route": {"lanes": [], "centerline": np.round(path, 1).tolist(), "command": command},
        "ego": {"length": sample.ego_length, "width": sample.ego_width,
                "speed": float(sample.history_speed[-1]), "speed_limit": None},
    }


def _continue_at_constant_velocity(future: np.ndarray, n_real: int) -> np.ndarray:
    """``future`` with the rows past ``n_real`` replaced by the last real step's motion carried
    on at constant speed and heading."""
    out = np.asarray(future, dtype=np.float64).copy()
    if n_real >= len(out):
        return out
    last = out[n_real - 1]
    before = out[n_real - 2] if n_real >= 2 else np.zeros(3)
    step = float(np.hypot(*(last[:2] - before[:2])))
    k = np.arange(1, len(out) - n_real + 1)
    out[n_real:, 0] = last[0] + k * step * np.cos(last[2])
    out[n_real:, 1] = last[1] + k * step * np.sin(last[2])
    out[n_real:, 2] = last[2]
    return out


def make_row(sample: LogSample, hz: float = HZ) -> dict:
    """The data-set row of ``sample`` (see the module docstring for what differs from a
    simulator row). Raises ``ValueError`` when its real future is shorter than 3 s."""
    valid = future_valid(sample.future)
    n_real = int(valid.sum())
    if n_real < int(round(MIN_FUTURE_S * hz)):
        raise ValueError(f"{sample.sample_id}: only {n_real / hz:.1f} s of future in the log "
                         f"(at least {MIN_FUTURE_S} s needed)")
    future = unwrap_yaw(_continue_at_constant_velocity(sample.future, n_real))
    speed = sample.history_speed
    # acceleration: slope of a line through the last 0.5 s of speeds (a one-step difference of
    # logged speeds is mostly noise)
    n_fit = min(len(speed), int(round(0.5 * hz)) + 1)
    t = np.arange(n_fit) / hz
    accel = float(np.polyfit(t, speed[-n_fit:], 1)[0]) if n_fit >= 2 else 0.0
    hist = sample.history
    yaw_rate = float(wrap_angle(hist[-1, 2] - hist[-2, 2])) * hz
    decision = derive_meta_action(future[:n_real], float(speed[-1]), hz=hz)
    command = derive_command(future, valid, hz)
    cache = log_metric_cache(sample, command, valid)
    return {
        "sample_id": sample.sample_id,
        "episode_id": int(sample.episode_id),
        "episode_seed": -1,
        "scenario": sample.scenario,
        "road": sample.road,
        "t0": round(float(sample.t0), 2),
        "images": [{"bytes": b, "path": None} for b in sample.images],
        "camera_names": list(sample.camera_names),
        "frame_times": [round(float(x), 3) for x in sample.frame_times],
        "topdown": None,
        "history": np.round(np.column_stack([hist, speed]), 3).tolist(),
        "ego_speed": float(speed[-1]),
        "ego_accel": accel,
        "ego_yaw_rate": yaw_rate,
        "command": command,
        "future": np.round(future, 3).tolist(),
        "future_valid": valid.tolist(),
        "source": sample.source,
        "decision_lon": decision.longitudinal,
        "decision_lat": decision.lateral,
        "critical": "[]",
        "reasoning": sample.reasoning,
        "metric_cache": json.dumps(cache, separators=(",", ":")),
    }


def ego_frame(poses: np.ndarray, pose0: np.ndarray) -> np.ndarray:
    """World poses ``(..., 3)`` in the ego frame of ``pose0`` (NaN rows stay NaN)."""
    return to_ego(np.asarray(poses, dtype=np.float64), np.asarray(pose0, dtype=np.float64))
