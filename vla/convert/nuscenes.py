"""Convert nuScenes (``v1.0-mini``, ``v1.0-trainval``, ...) into a ``vla`` data set.

The JSON tables in ``<root>/<version>/`` are read directly (the real schema: tokens,
``prev``/``next`` links, ``timestamp`` in µs, ``rotation`` as ``[w, x, y, z]``, ``size`` as
``[width, length, height]``); the quaternion maths is our own (:mod:`vla.convert.common`).

* **Keyframes.** Every ``sample`` (the annotated key frames, 2 Hz) of every scene is one
  candidate, in the order of the scene's ``first_sample_token`` / ``next`` chain; t0 is the
  sample's own timestamp (the LIDAR_TOP sweep's; the cameras fire some ms apart from it).
  ``sample_id`` is ``<scene name>-<keyframe index>``, ``episode_id`` the scene's index in the
  ``scene`` table, ``road`` the ``log``'s ``location``, ``scenario`` ``log``.
* **Frames.** Per camera channel (the channel names are the camera names): the frame at t0 is
  the channel's key-frame ``sample_data`` of that sample; the frame at t0 - 0.5 s is the
  channel's ``sample_data`` of the scene (key frames and sweeps) whose timestamp is nearest
  t0 - 0.5 s. ``frame_times`` hold the nominal ``-0.5`` and ``0.0``; the largest offset of a
  picked frame from its nominal time is the summary's ``frame_offset_max_ms`` (at 12 Hz
  cameras, at most ~45 ms). A sample whose frame is missing, or further than
  ``max_frame_offset_ms`` from its nominal time, is skipped and counted.
* **Ego poses.** The ``ego_pose`` of every ``sample_data`` of the scene (all channels, key frames
  and sweeps: ~100 poses a second) sorted by timestamp, with repeated timestamps dropped, as
  ``(x, y, yaw)`` (yaw of the quaternion about +z). They are resampled linearly onto our 10 Hz
  grid from t0 - 2.0 s to t0 + 6.0 s (:func:`vla.convert.common.resample_poses`, yaw
  unwrapped): a sample whose 2.0 s of history are not all logged is skipped and counted, future
  steps past the end of the scene are NaN, which :func:`vla.convert.common.make_row` turns into
  the ``future_valid`` mask (a sample with less than 3 s of future is skipped and counted).
  nuScenes' ego pose is the middle of the rear axle; it is used as it is.
* **Interpolation error.** Linear interpolation between poses ~10 ms apart cuts the corner of a
  curve by its sagitta, ``v^2 dt^2 / (8 R)``: under 1 mm for 15 m/s on a 20 m radius. The
  tests measure it on a log made from an analytic motion (a left turn on a ~60 m radius while
  speeding up to 14 m/s, poses ~15 ms apart): 0.5 mm at worst over every 10 Hz step (mostly
  the row's rounding to mm), and 0.7 mm against the logged key-frame poses (the issue's
  criterion: 5 cm). Pose noise of a real log passes through unfiltered.
* **Speeds** (the history's fourth column) are finite differences of the resampled history
  positions (:func:`numpy.gradient`: central differences, one-sided at both ends, so the speed
  at t0 is the mean over its last 0.1 s, never looking into the future).
* **Agents** (the metric cache's): the ``sample_annotation`` boxes of the scene's key samples,
  per ``instance`` (``id``: the instance's index in the ``instance`` table, ``class``: its
  ``category`` name, ``length`` / ``width`` from ``size``), linearly interpolated (yaw the short
  way round) between annotations on consecutive key samples onto the future's 10 Hz grid, in
  the ego frame at t0; a step is None where the instance is not annotated on both sides of it.
  An instance with no annotated future step is left out.
* **Command** (``turn_left`` / ``turn_right`` / ``follow_road``): nuScenes has no route, so it
  is derived from the logged future, VAD's convention: a lateral offset beyond ±2 m at 3 s.
* **Off-road.** nuScenes' maps are not read: there is no drivable area, and off-road metrics
  are reported as not available (``"drivable": "not_available"``).

A table file missing from ``<root>/<version>/`` is an error naming it; a camera channel that a
scene lacks is an error naming it, the scene and the channels there are. A camera frame that
is missing or cannot be decoded skips its sample (counted as ``unreadable_image``, the first
few files named in the summary's ``unreadable_examples``): real downloads often lack some
blobs, and the rest of the log is still good data. The reasons a sample is counted under in
``skipped``: ``short_history``, ``short_future``, ``missing_camera_frame``,
``unreadable_image`` (and ``scene_without_samples`` / ``scene_without_ego_poses`` for a scene).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from vla.convert.common import (
    HZ,
    MIN_FUTURE_S,
    LogSample,
    ego_frame,
    fit_image,
    future_valid,
    make_row,
    quaternion_yaw,
    resample_poses,
)
from vla.convert.writer import FRAME_GAP_S, HISTORY_S, HORIZON_S, write_converted
from vla.sim.observation import IMAGE_SIDE_MULTIPLE, MAX_IMAGE_SIDE
from vla.trajectory.types import wrap_angle

SOURCE = "nuscenes"
DEFAULT_CAMERAS = ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK")
#: The tables read, with the fields each row must have.
TABLE_FIELDS = {
    "scene": ("token", "log_token", "first_sample_token", "name"),
    "sample": ("token", "timestamp", "next", "scene_token"),
    "sample_data": ("token", "sample_token", "ego_pose_token", "calibrated_sensor_token",
                    "timestamp", "is_key_frame", "filename"),
    "ego_pose": ("token", "timestamp", "rotation", "translation"),
    "calibrated_sensor": ("token", "sensor_token"),
    "sensor": ("token", "channel", "modality"),
    "log": ("token", "location"),
    "instance": ("token", "category_token"),
    "sample_annotation": ("token", "sample_token", "instance_token", "translation", "size",
                          "rotation"),
    "category": ("token", "name"),
}
UNREADABLE_EXAMPLES = 3


@dataclasses.dataclass(frozen=True)
class NuScenesConfig:
    """What to convert: the nuScenes folder ``root`` (holding ``<version>/`` and the
    ``samples`` / ``sweeps`` images), the data set to write ``out`` (must not exist), the camera
    channels, the image size (multiples of 28 px), the split seed, and how far a picked camera
    frame may be from its nominal time (``max_frame_offset_ms``)."""

    root: str | Path
    out: str | Path
    version: str = "v1.0-mini"
    cameras: tuple[str, ...] = DEFAULT_CAMERAS
    image_width: int = 224
    image_height: int = 112
    seed: int = 0
    max_frame_offset_ms: float = 100.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "out", Path(self.out))
        if isinstance(self.cameras, str):
            raise ValueError(f"cameras must be a sequence of channel names, got {self.cameras!r}")
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if not self.cameras or not all(isinstance(c, str) and c for c in self.cameras):
            raise ValueError(f"cameras must be non-empty channel names, got {self.cameras!r}")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras repeat: {self.cameras}")
        if not isinstance(self.version, str) or not self.version or "/" in self.version:
            raise ValueError(f"version must be a folder name such as 'v1.0-mini', "
                             f"got {self.version!r}")
        for name in ("image_width", "image_height"):
            side = getattr(self, name)
            if (not isinstance(side, int) or not 0 < side <= MAX_IMAGE_SIDE
                    or side % IMAGE_SIDE_MULTIPLE):
                raise ValueError(f"{name} must be a multiple of {IMAGE_SIDE_MULTIPLE} px in "
                                 f"[{IMAGE_SIDE_MULTIPLE}, {MAX_IMAGE_SIDE}], got {side!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not 0 < self.max_frame_offset_ms <= 1000 * FRAME_GAP_S / 2:
            raise ValueError(f"max_frame_offset_ms must be in (0, {1000 * FRAME_GAP_S / 2:g}], "
                             f"got {self.max_frame_offset_ms}")


def load_tables(root: Path, version: str) -> dict[str, list[dict]]:
    """The tables of :data:`TABLE_FIELDS` from ``root/version/<table>.json``. A missing file,
    a file that is not a JSON list, or a row without a needed field is an error naming it."""
    folder = root / version
    if not folder.is_dir():
        raise FileNotFoundError(f"no nuScenes tables at {folder} (is --version right?)")
    missing = [str(folder / f"{t}.json") for t in TABLE_FIELDS
               if not (folder / f"{t}.json").is_file()]
    if missing:
        raise FileNotFoundError(f"nuScenes table missing: {', '.join(missing)}")
    tables = {}
    for name, fields in TABLE_FIELDS.items():
        path = folder / f"{name}.json"
        try:
            rows = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable JSON table ({exc})") from exc
        if not isinstance(rows, list):
            raise ValueError(f"{path}: a table must be a JSON list of rows")
        for i, row in enumerate(rows):
            lacking = [f for f in fields if not isinstance(row, dict) or f not in row]
            if lacking:
                raise ValueError(f"{path}: row {i} lacks {lacking}")
        tables[name] = rows
    return tables


def _by_token(rows: list[dict]) -> dict[str, dict]:
    return {row["token"]: row for row in rows}


def _lookup(index: dict, token: str, table: str, where: str):
    """``index[token]``; a dangling token is an error naming where it came from."""
    try:
        return index[token]
    except KeyError:
        raise ValueError(f"{where}: token {token!r} is not in the {table} table") from None


class NuScenesLog:
    """The tables of a nuScenes folder, indexed by token; the sample_data and the annotations
    of each sample; the channel of each calibrated sensor; each instance's index and class."""

    def __init__(self, root: Path, version: str):
        self.root = root
        self.where = str(root / version)
        t = load_tables(root, version)
        self.scenes = t["scene"]
        self.samples = _by_token(t["sample"])
        self.logs = _by_token(t["log"])
        self.ego_poses = _by_token(t["ego_pose"])
        sensors = _by_token(t["sensor"])
        self.channel_of_cs = {
            cs["token"]: _lookup(sensors, cs["sensor_token"], "sensor",
                                 f"{self.where}/calibrated_sensor.json")["channel"]
            for cs in t["calibrated_sensor"]}
        self.sample_data_of: dict[str, list[dict]] = {}  # sample token -> its sample_data
        for sd in t["sample_data"]:
            self.sample_data_of.setdefault(sd["sample_token"], []).append(sd)
        categories = _by_token(t["category"])
        self.instances = {
            inst["token"]: (i, _lookup(categories, inst["category_token"], "category",
                                       f"{self.where}/instance.json")["name"])
            for i, inst in enumerate(t["instance"])}
        self.annotations_of: dict[str, list[dict]] = {}  # sample token -> its annotations
        for ann in t["sample_annotation"]:
            self.annotations_of.setdefault(ann["sample_token"], []).append(ann)

    def scene_samples(self, scene: dict) -> list[dict]:
        """The scene's samples, following ``first_sample_token`` and ``next``."""
        out, token = [], scene["first_sample_token"]
        while token:
            sample = _lookup(self.samples, token, "sample", f"scene {scene['name']}")
            out.append(sample)
            token = sample["next"]
            if len(out) > len(self.samples):
                raise ValueError(f"scene {scene['name']}: its samples' next links loop")
        return out

    def channel(self, sd: dict) -> str:
        return _lookup(self.channel_of_cs, sd["calibrated_sensor_token"], "calibrated_sensor",
                       f"sample_data {sd['token']}")

    def scene_poses(self, scene_data: list[dict], ref_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(times in s from ``ref_us``, world ``(x, y, yaw)``) of the ego poses of the scene's
        sample_data, sorted by time, one per timestamp (none at all: two empty arrays)."""
        by_time: dict[int, dict] = {}
        for sd in scene_data:
            pose = _lookup(self.ego_poses, sd["ego_pose_token"], "ego_pose",
                           f"sample_data {sd['token']}")
            by_time.setdefault(int(pose["timestamp"]), pose)
        stamps = sorted(by_time)
        if not stamps:
            return np.zeros(0), np.zeros((0, 3))
        rot = np.array([by_time[s]["rotation"] for s in stamps], dtype=np.float64)
        xy = np.array([by_time[s]["translation"][:2] for s in stamps], dtype=np.float64)
        yaw = quaternion_yaw(rot[:, 0], rot[:, 1], rot[:, 2], rot[:, 3])
        return (np.array(stamps, dtype=np.float64) - ref_us) / 1e6, np.column_stack([xy, yaw])


def instance_tracks(log: NuScenesLog, samples: list[dict], ref_us: int) -> dict[str, dict]:
    """Per instance annotated in the scene: ``id``, ``class``, ``length``, ``width`` and its
    annotations as ``(key-sample index, time in s from ref_us, x, y, yaw)`` sorted by time."""
    tracks: dict[str, dict] = {}
    for k, sample in enumerate(samples):
        for ann in log.annotations_of.get(sample["token"], []):
            index, name = _lookup(log.instances, ann["instance_token"], "instance",
                                  f"sample_annotation {ann['token']}")
            track = tracks.setdefault(ann["instance_token"], {
                "id": index, "class": name, "width": float(ann["size"][0]),
                "length": float(ann["size"][1]), "poses": []})
            w, x, y, z = ann["rotation"]
            track["poses"].append((k, (sample["timestamp"] - ref_us) / 1e6,
                                   float(ann["translation"][0]), float(ann["translation"][1]),
                                   float(quaternion_yaw(w, x, y, z))))
    for track in tracks.values():
        track["poses"].sort(key=lambda p: p[1])
    return tracks


def agents_in_ego_frame(tracks: dict[str, dict], grid_s: np.ndarray, pose0: np.ndarray,
                        ) -> list[dict]:
    """The metric cache's agents at the future times ``grid_s``: each track interpolated
    linearly between annotations on consecutive key samples (None elsewhere), in the ego frame
    of ``pose0``, rounded to cm; tracks with no step left out."""
    agents = []
    for track in tracks.values():
        world = np.full((len(grid_s), 3), np.nan)
        poses = track["poses"]
        for (ka, ta, *pa), (kb, tb, *pb) in zip(poses, poses[1:], strict=False):
            if kb != ka + 1 or tb <= ta:
                continue
            inside = (grid_s >= ta - 1e-9) & (grid_s <= tb + 1e-9)
            if not inside.any():
                continue
            f = ((grid_s[inside] - ta) / (tb - ta))[:, None]
            a, b = np.asarray(pa), np.asarray(pb)
            step = np.array([b[0] - a[0], b[1] - a[1], float(wrap_angle(b[2] - a[2]))])
            world[inside] = a + f * step
        if len(poses) == 1:  # annotated once: only a grid time on that sample itself
            _, t1, *p1 = poses[0]
            world[np.abs(grid_s - t1) < 1e-9] = p1
        if np.isnan(world).all():
            continue
        ego = ego_frame(world, pose0)
        future = [None if np.isnan(p).any() else np.round(p, 2).tolist() for p in ego]
        agents.append({"id": int(track["id"]), "class": track["class"],
                       "length": track["length"], "width": track["width"], "future": future})
    return sorted(agents, key=lambda a: a["id"])


def history_speeds(history_world: np.ndarray, hz: float = HZ) -> np.ndarray:
    """Speed (m/s) at each resampled history pose: :func:`numpy.gradient` of x and y (central
    differences, one-sided at both ends, so only history poses are used), then the norm."""
    vx = np.gradient(history_world[:, 0], 1.0 / hz)
    vy = np.gradient(history_world[:, 1], 1.0 / hz)
    return np.hypot(vx, vy)


class _Skip(Exception):
    """A sample left out, with the reason it is counted under."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _frames(channel_data: dict[str, list[dict]], key_frames: dict[str, dict], t0_us: int,
            cameras: tuple[str, ...], max_offset_us: float) -> tuple[list[dict], float]:
    """The picked sample_data, frame-major (every camera at t0 - 0.5 s, then at t0), and the
    largest offset (µs) of one from its nominal time."""
    gap_us = int(round(FRAME_GAP_S * 1e6))
    older, newer, worst = [], [], 0.0
    for cam in cameras:
        key = key_frames.get(cam)
        if key is None:
            raise _Skip("missing_camera_frame")
        data = channel_data[cam]
        stamps = [sd["timestamp"] for sd in data]
        target = t0_us - gap_us
        i = bisect.bisect_left(stamps, target)
        near = min((j for j in (i - 1, i) if 0 <= j < len(data)),
                   key=lambda j: abs(stamps[j] - target))
        for sd, nominal in ((data[near], target), (key, t0_us)):
            offset = abs(sd["timestamp"] - nominal)
            if offset > max_offset_us:
                raise _Skip("missing_camera_frame")
            worst = max(worst, offset)
        older.append(data[near])
        newer.append(key)
    return older + newer, worst


def _images(root: Path, frames: list[dict], width: int, height: int) -> list[bytes]:
    images = []
    for sd in frames:
        path = root / sd["filename"]
        try:
            images.append(fit_image(path.read_bytes(), width, height, where=str(path)))
        except (OSError, ValueError):
            raise _Skip("unreadable_image", sd["filename"]) from None
    return images


def convert_scene(log: NuScenesLog, scene_index: int, config: NuScenesConfig,
                  skipped: Counter, unreadable: list[str]) -> tuple[list[dict], float]:
    """The rows of one scene (samples left out counted in ``skipped`` by reason, unreadable
    files appended to ``unreadable``) and the largest frame offset (µs) of a kept row."""
    scene = log.scenes[scene_index]
    name = scene["name"]
    samples = log.scene_samples(scene)
    if not samples:
        skipped["scene_without_samples"] += 1
        return [], 0.0
    scene_data = [sd for s in samples for sd in log.sample_data_of.get(s["token"], [])]
    channel_data: dict[str, list[dict]] = {}
    for sd in scene_data:
        channel_data.setdefault(log.channel(sd), []).append(sd)
    for cam in config.cameras:
        if cam not in channel_data:
            raise ValueError(f"camera channel {cam!r} is not in scene {name} of {log.where}; "
                             f"its channels: {sorted(channel_data)}")
    for data in channel_data.values():
        data.sort(key=lambda sd: sd["timestamp"])
    ref_us = int(samples[0]["timestamp"])
    times, world = log.scene_poses(scene_data, ref_us)
    if len(times) < 2:
        skipped["scene_without_ego_poses"] += 1
        return [], 0.0
    tracks = instance_tracks(log, samples, ref_us)
    location = _lookup(log.logs, scene["log_token"], "log", f"scene {name}")["location"]
    n_hist, n_fut = int(round(HISTORY_S * HZ)), int(round(HORIZON_S * HZ))
    steps = np.arange(-n_hist, n_fut + 1) / HZ
    rows, worst = [], 0.0
    for k, sample in enumerate(samples):
        t0_us = int(sample["timestamp"])
        t0 = (t0_us - ref_us) / 1e6
        grid = t0 + steps
        poses = resample_poses(times, world, grid)
        if np.isnan(poses[: n_hist + 1]).any():
            skipped["short_history"] += 1
            continue
        rel = ego_frame(poses, poses[n_hist])
        real = np.isfinite(rel).all(axis=1)
        rel[real, 2] = np.unwrap(rel[real, 2])
        future = rel[n_hist + 1:]
        if future_valid(future).sum() < int(round(MIN_FUTURE_S * HZ)):
            skipped["short_future"] += 1
            continue
        key_frames = {log.channel(sd): sd for sd in log.sample_data_of.get(sample["token"], [])
                      if sd["is_key_frame"]}
        try:
            frames, offset = _frames(channel_data, key_frames, t0_us, config.cameras,
                                     config.max_frame_offset_ms * 1e3)
            images = _images(log.root, frames, config.image_width, config.image_height)
        except _Skip as skip:
            skipped[skip.reason] += 1
            if skip.detail and skip.detail not in unreadable \
                    and len(unreadable) < UNREADABLE_EXAMPLES:
                unreadable.append(skip.detail)
            continue
        cams = list(config.cameras)
        log_sample = LogSample(
            sample_id=f"{name}-{k}", episode_id=scene_index, source=SOURCE, scenario="log",
            t0=t0, images=images, camera_names=cams + cams,
            frame_times=[-FRAME_GAP_S] * len(cams) + [0.0] * len(cams),
            history=rel[: n_hist + 1], history_speed=history_speeds(poses[: n_hist + 1]),
            future=future, agents=agents_in_ego_frame(tracks, grid[n_hist + 1:],
                                                      poses[n_hist]),
            road=location)
        try:
            rows.append(make_row(log_sample))
        except ValueError:
            skipped["short_future"] += 1
            continue
        worst = max(worst, offset)
    return rows, worst


def convert_nuscenes(config: NuScenesConfig) -> dict:
    """Convert every scene of ``config.root/config.version`` into the data set ``config.out``
    (see the module docstring); returns its metadata: ``skipped`` counts the samples left out
    by reason; ``nuscenes_version``, ``frame_offset_max_ms``, ``unreadable_examples`` and the
    conversion speed ``keyframes_per_min_per_core`` are the summary."""
    if config.out.exists():
        raise FileExistsError(f"{config.out} already exists; remove it or choose another --out")
    cpu_start = time.process_time()
    log = NuScenesLog(config.root, config.version)
    skipped: Counter = Counter()
    unreadable: list[str] = []
    rows, worst = [], 0.0
    for index in range(len(log.scenes)):
        scene_rows, scene_worst = convert_scene(log, index, config, skipped, unreadable)
        rows += scene_rows
        worst = max(worst, scene_worst)
    cpu_s = time.process_time() - cpu_start
    summary = {"nuscenes_version": config.version, "frame_offset_max_ms": round(worst / 1e3, 1),
               "unreadable_examples": unreadable,
               "keyframes_per_min_per_core": round(len(rows) / max(cpu_s, 1e-9) * 60, 1)}
    return write_converted(rows, config.out, source=SOURCE, root=config.root,
                           cameras=list(config.cameras),
                           image_size=(config.image_width, config.image_height),
                           skipped=skipped, seed=config.seed, extra=summary)
