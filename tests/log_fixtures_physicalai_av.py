"""Write small PhysicalAI-AV folders in the data set's real layout for the converter's tests.

The ego drives a circular arc at constant speed and yaw rate (``ego_state``), starting with
a heading of 2.5 rad so that the arc crosses the ±pi wrap: the converted poses can be checked
against it in closed form. Each camera's video is a few seconds of tiny frames whose grey
level tells the frame's index (``frame_level``), with a bar that moves from frame to frame.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np

CAMERAS = ("camera_front_wide_120fov", "camera_front_tele_30fov",
           "camera_cross_left_120fov", "camera_cross_right_120fov")
CLIP_ID = "3f1c2a9e-5b7d-4c11-9a2e-7d0b6c4e8f01"
ABSENT_CLIP_ID = "8a2d4e6f-1b3c-4d5e-8f70-91a2b3c4d5e6"
ABSENT_CHUNK = 1

EGO_HZ = 100.0
FPS = 30.0
WIDTH, HEIGHT = 64, 36
#: the ego's arc: speed (m/s), yaw rate (rad/s), start pose
SPEED, YAW_RATE = 9.0, 0.12
X0, Y0, YAW0 = 120.0, -40.0, 2.5
#: the log's clock: the first ego pose and each camera's first frame (us)
EGO_START_US = 50_000
FRAME_START_US = {name: 60_000 + 4_000 * i for i, name in enumerate(CAMERAS)}

EVENT_TEXT = "Slow down: a pedestrian steps onto the crossing ahead."
#: reasoning events of the default clip (s on the log's clock): 3.0 s is kept; 1.0 s has too
#: little history; 8.0 s too little log after it (12 s clip)
EVENT_STARTS_S = (3.0, 1.0, 8.0)


def ego_state(t_s):
    """``(x, y, yaw, vx, vy)`` of the ego at log time ``t_s`` (s; yaw unwrapped)."""
    t = np.asarray(t_s, dtype=np.float64) - EGO_START_US * 1e-6
    yaw = YAW0 + YAW_RATE * t
    radius = SPEED / YAW_RATE
    x = X0 + radius * (np.sin(yaw) - np.sin(YAW0))
    y = Y0 - radius * (np.cos(yaw) - np.cos(YAW0))
    return x, y, yaw, SPEED * np.cos(yaw), SPEED * np.sin(yaw)


def frame_level(index: int) -> int:
    """The grey level of frame ``index`` (repeats every 50 frames)."""
    return 30 + 4 * (index % 50)


def frame_times_us(camera: str, duration_s: float) -> np.ndarray:
    start = FRAME_START_US[camera]
    n = int((EGO_START_US + duration_s * 1e6 - start) * 1e-6 * FPS) + 1
    return (start + np.round(np.arange(n) * 1e6 / FPS)).astype(np.int64)


@dataclasses.dataclass
class FixtureClip:
    """One clip to write into chunk 0. ``events``: the reasoning events (the JSON objects);
    None writes :data:`EVENT_STARTS_S` in ``event_style``; ``truncated``: cameras whose
    mp4 is cut in half; ``missing``: cameras left out of the chunk."""

    clip_id: str = CLIP_ID
    duration_s: float = 12.0
    events: list[dict] | None = None
    truncated: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def default_events(style: str, clip: FixtureClip) -> list[dict]:
    """The events at :data:`EVENT_STARTS_S`: ``"timestamp_coc"`` (``event_start_timestamp``
    in us and ``coc``) or ``"frame_cot"`` (``event_start_frame`` of the front wide camera and
    ``cot``)."""
    events = []
    stamps = frame_times_us(CAMERAS[0], clip.duration_s)
    for i, start in enumerate(EVENT_STARTS_S):
        text = EVENT_TEXT if i == 0 else f"Event {i}: keep the lane."
        if style == "timestamp_coc":
            events.append({"event_start_timestamp": int(start * 1e6), "coc": text})
        elif style == "frame_cot":
            frame = int(np.argmin(np.abs(stamps - start * 1e6)))
            events.append({"event_start_frame": frame, "cot": text})
        else:
            raise ValueError(f"unknown event style {style!r}")
    return events


def encode_video(n_frames: int) -> bytes:
    """A tiny H.264 mp4: frame ``i`` is grey ``frame_level(i)`` with a moving bar."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(FPS))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "8"}
        stream.thread_count = 1
        for i in range(n_frames):
            image = np.full((HEIGHT, WIDTH, 3), frame_level(i), dtype=np.uint8)
            bar = (2 * i) % (WIDTH - 4)
            image[:, bar:bar + 4] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def parquet_bytes(frame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def egomotion_table(duration_s: float):
    import pandas as pd

    stamps = EGO_START_US + np.round(np.arange(int(duration_s * EGO_HZ) + 1)
                                     * 1e6 / EGO_HZ).astype(np.int64)
    x, y, yaw, vx, vy = ego_state(stamps * 1e-6)
    zeros = np.zeros_like(x)
    accel = SPEED * YAW_RATE  # centripetal
    return pd.DataFrame({
        "timestamp": stamps, "x": x, "y": y, "z": zeros + 0.3,
        "qx": zeros, "qy": zeros, "qz": np.sin(yaw / 2), "qw": np.cos(yaw / 2),
        "vx": vx, "vy": vy, "vz": zeros,
        "ax": -accel * np.sin(yaw), "ay": accel * np.cos(yaw), "az": zeros,
        "curvature": zeros + YAW_RATE / SPEED,
    })


def features_table():
    """``features.csv`` of the cameras and the egomotion (the hub's templates)."""
    import pandas as pd

    rows = [{"feature": "egomotion", "directory": "labels",
             "chunk_path": "labels/egomotion/egomotion.chunk_{chunk_id:04d}.zip",
             "clip_files_in_zip": json.dumps({"egomotion": "{clip_id}.egomotion.parquet"})}]
    for name in CAMERAS:
        rows.append({"feature": name, "directory": "camera",
                     "chunk_path": f"camera/{name}/{name}.chunk_{{chunk_id:04d}}.zip",
                     "clip_files_in_zip": json.dumps({
                         "video": f"{{clip_id}}.{name}.mp4",
                         "frame_timestamps": f"{{clip_id}}.{name}.timestamps.parquet"})})
    return pd.DataFrame(rows).set_index("feature")


def write_physicalai_av(root: str | Path, clips: list[FixtureClip] | None = None, *,
                        event_style: str = "timestamp_coc", features_csv: bool = True,
                        absent_clip: bool = True, clip_index: bool = True) -> Path:
    """Write ``clips`` (default: one 12 s clip) into chunk 0 under ``root``, and list
    :data:`ABSENT_CLIP_ID` in the index with a chunk that is not on disk. Returns ``root``."""
    import pandas as pd

    root = Path(root)
    clips = [FixtureClip()] if clips is None else clips
    (root / "labels" / "egomotion").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "labels/egomotion/egomotion.chunk_0000.zip", "w") as archive:
        for clip in clips:
            archive.writestr(f"{clip.clip_id}.egomotion.parquet",
                             parquet_bytes(egomotion_table(clip.duration_s)))
    for name in CAMERAS:
        folder = root / "camera" / name
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(folder / f"{name}.chunk_0000.zip", "w") as archive:
            for clip in clips:
                if name in clip.missing:
                    continue
                stamps = frame_times_us(name, clip.duration_s)
                video = encode_video(len(stamps))
                if name in clip.truncated:
                    video = video[:len(video) // 2]
                archive.writestr(f"{clip.clip_id}.{name}.mp4", video)
                archive.writestr(f"{clip.clip_id}.{name}.timestamps.parquet",
                                 parquet_bytes(pd.DataFrame({"timestamp": stamps})))
    if clip_index:
        ids = [c.clip_id for c in clips] + ([ABSENT_CLIP_ID] if absent_clip else [])
        chunks = [0] * len(clips) + ([ABSENT_CHUNK] if absent_clip else [])
        pd.DataFrame({"chunk": chunks}, index=pd.Index(ids, name="clip_id")).to_parquet(
            root / "clip_index.parquet")
    if features_csv:
        features_table().to_csv(root / "features.csv")
    (root / "reasoning").mkdir(exist_ok=True)
    events = {c.clip_id: default_events(event_style, c) if c.events is None else c.events
              for c in clips}
    pd.DataFrame({"events": [json.dumps(e) for e in events.values()]},
                 index=pd.Index(list(events), name="clip_id")).to_parquet(
        root / "reasoning" / "ood_reasoning.parquet")
    return root
