"""A small nuScenes-format folder with the real tables and field names, for the converter's tests.

Two scenes of 9.5 s each (20 key samples at 2 Hz): a LIDAR_TOP at 20 Hz, whose key frames
define the samples' timestamps, and four cameras at 12 Hz that fire a few ms apart from the
lidar (key frames: every sixth image, the one nearest each sample). Every sample_data carries
an ego pose of an analytic motion (:class:`Motion`): scene 0 turns left while speeding up, its
heading crossing +-pi; scene 1 drives straight on, slowing down, heading south-west. Each
pose has a small pitch, as real ones do. Annotated instances: in scene 0 a car driving ahead
on the ego's path, a parked truck and a pedestrian annotated on samples 8 to 12 only; in
scene 1 an oncoming car. Images are 64x36 JPEGs with a coloured box, one per camera.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np

CAMERAS = ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK")
#: When each camera fires relative to the lidar sweep (µs), as in the real rig: a few ms apart.
CAMERA_OFFSET_US = {"CAM_FRONT_LEFT": -9_000, "CAM_FRONT": 4_000, "CAM_FRONT_RIGHT": 12_000,
                    "CAM_BACK": -21_000}
LIDAR = "LIDAR_TOP"
SAMPLES_PER_SCENE = 20
SAMPLE_PERIOD_US = 500_000
LIDAR_PERIOD_US = 50_000
CAMERA_HZ = 12
PITCH = 0.015
IMAGE_SIZE = (64, 36)


@dataclasses.dataclass(frozen=True)
class Motion:
    """Planar motion from ``(x0, y0)`` with heading ``yaw0 + yaw_rate t`` and speed
    ``speed0 + accel t`` (t in s from the scene's first sample), in closed form."""

    x0: float
    y0: float
    yaw0: float
    yaw_rate: float
    speed0: float
    accel: float

    def pose(self, t):
        """World ``(x, y, yaw)`` at ``t`` (s; scalar or array), yaw not wrapped."""
        t = np.asarray(t, dtype=np.float64)
        a, b, w, th0 = self.speed0, self.accel, self.yaw_rate, self.yaw0
        yaw = th0 + w * t
        if abs(w) < 1e-12:
            s = a * t + 0.5 * b * t * t
            return np.stack([self.x0 + s * math.cos(th0), self.y0 + s * math.sin(th0), yaw], -1)
        v = a + b * t
        # integrals of v(t) cos(yaw(t)) and v(t) sin(yaw(t)) from 0 to t
        fx = lambda v, yaw: v * np.sin(yaw) / w + b * np.cos(yaw) / w**2  # noqa: E731
        fy = lambda v, yaw: -v * np.cos(yaw) / w + b * np.sin(yaw) / w**2  # noqa: E731
        x = self.x0 + fx(v, yaw) - fx(a, th0)
        y = self.y0 + fy(v, yaw) - fy(a, th0)
        return np.stack([x, y, yaw], -1)


@dataclasses.dataclass(frozen=True)
class Agent:
    """An annotated instance: ``where(t)`` gives its world ``(x, y, yaw)``; annotated on the
    key samples ``first`` to ``last`` (inclusive) of its scene."""

    category: str
    size: tuple[float, float, float]  # width, length, height, as nuScenes stores it
    where: object
    first: int = 0
    last: int = SAMPLES_PER_SCENE - 1


LEFT_TURN = Motion(x0=411.3, y0=1180.6, yaw0=2.6, yaw_rate=0.16, speed0=6.0, accel=0.8)
STRAIGHT = Motion(x0=1720.4, y0=862.9, yaw0=-2.2, yaw_rate=0.0, speed0=11.0, accel=-0.7)


def _scenes() -> list[dict]:
    truck_at = np.array([400.0, 1195.0, 1.0])
    walker_from = np.array([385.0, 1192.0])
    oncoming = Motion(x0=1662.8, y0=777.9, yaw0=-2.2 + math.pi, yaw_rate=0.0, speed0=9.0,
                      accel=0.0)
    # the oncoming car drives one lane (3.5 m) to the left of the ego's line
    return [
        {"name": "scene-0061", "location": "singapore-onenorth", "motion": LEFT_TURN,
         "description": "Left turn, speeding up, parked truck, pedestrian",
         "agents": [
             Agent("vehicle.car", (1.9, 4.5, 1.6), lambda t: LEFT_TURN.pose(t + 1.5)),
             Agent("vehicle.truck", (2.5, 8.0, 3.2), lambda t: truck_at + 0 * t),
             Agent("human.pedestrian.adult", (0.6, 0.7, 1.75),
                   lambda t: np.array([*(walker_from + (t - 4.0) * np.array([0.9, -1.1])),
                                       -0.885]), first=8, last=12)]},
        {"name": "scene-0103", "location": "boston-seaport", "motion": STRAIGHT,
         "description": "Straight on, slowing down, oncoming car",
         "agents": [Agent("vehicle.car", (1.95, 4.7, 1.7), oncoming.pose)]},
    ]


def quaternion(yaw: float, pitch: float = 0.0) -> list[float]:
    """``[w, x, y, z]`` of a rotation by ``yaw`` about z after ``pitch`` about y."""
    cz, sz = math.cos(yaw / 2), math.sin(yaw / 2)
    cy, sy = math.cos(pitch / 2), math.sin(pitch / 2)
    return [cz * cy, -sz * sy, cz * sy, sz * cy]


def _token(*parts) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def _jpeg(colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", IMAGE_SIZE, (30, 35, 40))  # darker than every box
    ImageDraw.Draw(img).rectangle(box, fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _link(rows: list[dict]) -> None:
    for i, row in enumerate(rows):
        row["prev"] = rows[i - 1]["token"] if i else ""
        row["next"] = rows[i + 1]["token"] if i + 1 < len(rows) else ""


def write_nuscenes(root: str | Path, version: str = "v1.0-mini") -> list[dict]:
    """Write the two-scene folder into ``root`` (tables in ``root/version``, images under
    ``root/samples`` and ``root/sweeps``). Returns the scenes: ``name``, ``location``,
    ``motion`` (the ego's :class:`Motion`), ``start_us`` (first sample's timestamp)."""
    root = Path(root)
    (root / version).mkdir(parents=True, exist_ok=True)
    sensors, calibrated = [], []
    channel_cs = {}
    for ch in (*CAMERAS, LIDAR):
        modality = "lidar" if ch == LIDAR else "camera"
        sensors.append({"token": _token("sensor", ch), "channel": ch, "modality": modality})
        cs = {"token": _token("cs", ch), "sensor_token": _token("sensor", ch),
              "translation": [1.5, 0.0, 1.6], "rotation": [0.5, -0.5, 0.5, -0.5],
              "camera_intrinsic": [] if ch == LIDAR else [[40.0, 0.0, 32.0], [0.0, 40.0, 18.0],
                                                          [0.0, 0.0, 1.0]]}
        calibrated.append(cs)
        channel_cs[ch] = cs["token"]
    jpegs = {ch: _jpeg((40 + 50 * i, 200 - 40 * i, 60), (8 + 10 * i, 10, 30 + 8 * i, 30))
             for i, ch in enumerate(CAMERAS)}
    categories = {}
    visibility = [{"token": str(i), "level": level, "description": f"visibility {level}"}
                  for i, level in enumerate(("v0-40", "v40-60", "v60-80", "v80-100"), 1)]
    attribute = [{"token": _token("attribute", "vehicle.moving"), "name": "vehicle.moving",
                  "description": "Vehicle is moving."}]
    tables = {n: [] for n in ("log", "scene", "sample", "sample_data", "ego_pose", "instance",
                              "sample_annotation", "map")}
    info = []
    for s, spec in enumerate(_scenes()):
        start_us = 1_532_402_927_000_000 + s * 600_000_000
        date = "2018-07-24-11-22-45" if s == 0 else "2018-08-01-15-16-36"
        logfile = f"n015-{date}+0800"
        log_token = _token("log", s)
        tables["log"].append({"token": log_token, "logfile": logfile, "vehicle": "n015",
                              "date_captured": date[:10], "location": spec["location"]})
        tables["map"].append({"token": _token("map", s), "log_tokens": [log_token],
                              "category": "semantic_prior",
                              "filename": f"maps/{_token('mapfile', s)}.png"})
        scene_token = _token("scene", s)
        samples = [{"token": _token("sample", s, k), "timestamp": start_us + k * SAMPLE_PERIOD_US,
                    "scene_token": scene_token} for k in range(SAMPLES_PER_SCENE)]
        _link(samples)
        tables["sample"] += samples
        tables["scene"].append({
            "token": scene_token, "log_token": log_token, "nbr_samples": len(samples),
            "first_sample_token": samples[0]["token"], "last_sample_token": samples[-1]["token"],
            "name": spec["name"], "description": spec["description"]})
        end_us = samples[-1]["timestamp"]
        for ch in (*CAMERAS, LIDAR):
            if ch == LIDAR:
                n, every = (end_us - start_us) // LIDAR_PERIOD_US + 1, 10
                stamps = [start_us + j * LIDAR_PERIOD_US for j in range(n)]
                ext, fmt, (w, h) = "pcd.bin", "pcd", (0, 0)
            else:
                n, every = (SAMPLES_PER_SCENE - 1) * 6 + 1, 6
                stamps = [start_us + CAMERA_OFFSET_US[ch] + round(j * 1e6 / CAMERA_HZ)
                          for j in range(n)]
                ext, fmt, (w, h) = "jpg", "jpg", IMAGE_SIZE
            rows = []
            for j, ts in enumerate(stamps):
                key = j % every == 0
                folder = "samples" if key else "sweeps"
                sd_token = _token("sd", s, ch, j)
                ep_token = _token("ego", s, ch, j)
                x, y, yaw = spec["motion"].pose((ts - start_us) / 1e6)
                tables["ego_pose"].append({"token": ep_token, "timestamp": ts,
                                           "rotation": quaternion(float(yaw), PITCH),
                                           "translation": [float(x), float(y), 0.0]})
                filename = f"{folder}/{ch}/{logfile}__{ch}__{ts}.{ext}"
                rows.append({
                    "token": sd_token,
                    # sweeps belong to the next key sample, as in the real tables
                    "sample_token": samples[min(-(-j // every), SAMPLES_PER_SCENE - 1)]["token"],
                    "ego_pose_token": ep_token, "calibrated_sensor_token": channel_cs[ch],
                    "timestamp": ts, "fileformat": fmt, "is_key_frame": key, "height": h,
                    "width": w, "filename": filename})
                path = root / filename
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(np.zeros(5, np.float32).tobytes() if ch == LIDAR
                                 else jpegs[ch])
            _link(rows)
            tables["sample_data"] += rows
        for a, agent in enumerate(spec["agents"]):
            if agent.category not in categories:
                categories[agent.category] = {"token": _token("category", agent.category),
                                              "name": agent.category, "description": "",
                                              "index": len(categories)}
            inst_token = _token("instance", s, a)
            anns = []
            for k in range(agent.first, agent.last + 1):
                x, y, yaw = agent.where((samples[k]["timestamp"] - start_us) / 1e6)
                anns.append({
                    "token": _token("ann", s, a, k), "sample_token": samples[k]["token"],
                    "instance_token": inst_token, "visibility_token": "4",
                    "attribute_tokens": [attribute[0]["token"]] if "vehicle" in agent.category
                    else [],
                    "translation": [float(x), float(y), agent.size[2] / 2],
                    "size": list(agent.size), "rotation": quaternion(float(yaw)),
                    "num_lidar_pts": 120, "num_radar_pts": 3})
            _link(anns)
            tables["sample_annotation"] += anns
            tables["instance"].append({
                "token": inst_token, "category_token": categories[agent.category]["token"],
                "nbr_annotations": len(anns), "first_annotation_token": anns[0]["token"],
                "last_annotation_token": anns[-1]["token"]})
        info.append({"name": spec["name"], "location": spec["location"],
                     "motion": spec["motion"], "start_us": start_us})
    tables.update(sensor=sensors, calibrated_sensor=calibrated,
                  category=list(categories.values()), visibility=visibility,
                  attribute=attribute)
    for name, rows in tables.items():
        (root / version / f"{name}.json").write_text(json.dumps(rows, indent=0))
    return info
