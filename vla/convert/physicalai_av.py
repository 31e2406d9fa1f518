"""Convert NVIDIA PhysicalAI-Autonomous-Vehicles clips into a ``vla`` data set.

Layout read (a local copy of the data set, as its Hugging Face repository lays it out)::

    <root>/clip_index.parquet                   index clip_id; column chunk
    <root>/features.csv                         optional: feature -> chunk_path, clip_files_in_zip
    <root>/camera/<camera>/<camera>.chunk_<chunk:04d>.zip
        <clip_id>.<camera>.mp4                  the camera's video
        <clip_id>.<camera>.timestamps.parquet   column timestamp (us), one row per video frame
    <root>/labels/egomotion/egomotion.chunk_<chunk:04d>.zip
        <clip_id>.egomotion.parquet             timestamp (us), x, y, z, qx, qy, qz, qw,
                                                vx, vy, vz, ax, ay, az, curvature
    <root>/reasoning/ood_reasoning.parquet      index clip_id; column events (a JSON list)

Where ``features.csv`` is present its ``chunk_path`` and ``clip_files_in_zip`` templates name
the files (as the ``physical_ai_av`` reader does); without it the names above are used. Times
are the log's own clock (us in the files, seconds in the rows). A clip listed in the index
whose chunk is not on disk is skipped and counted, as is a clip whose chunk lacks one of the
cameras asked for; a camera with no ``camera/<camera>/`` folder at all is an error naming it.

Reader: the files are read here with ``pyarrow`` (through pandas) and PyAV (``av``), not
with the ``physical_ai_av`` package. Its dataset interface needs a Hugging Face snapshot (a
revision, ``features.csv`` and the metadata tables, through ``huggingface_hub``) even for
files on disk, and its video reader returns the frame at or *before* a time and assumes a
constant frame rate; what is needed here (two frames per camera, nearest in time, and one
parquet per clip) is a few lines of each library.

Samples (t0) of a clip:

* each reasoning event's start: ``event_start_timestamp`` (us) or, in releases that give a
  frame, ``event_start_frame`` (an index into the frame timestamps of
  ``camera_front_wide_120fov``, or of the first camera when that one is not converted). Its
  ``coc`` text (``cot`` in some releases) becomes ``reasoning``, scenario ``reasoning_event``.
  An event is kept where 2.0 s of history and 6.4 s of log after it fit in the clip (NVIDIA's
  loaders keep 1.6 s before and 6.4 s after; the history here is 2.0 s);
* a regular grid elsewhere: the multiples of ``grid_s`` on the log's clock from 2.0 s after
  the clip's first ego pose on, leaving out those closer than 1.0 s to any event start;
  empty reasoning (training masks it), scenario ``log``. A grid sample needs 3.0 s of
  future (``make_row``).

Skipped samples and clips are counted by reason in the metadata's ``skipped``.

Ego: x, y and the quaternion's yaw (:func:`quaternion_yaw`) of the egomotion table, resampled
linearly to the 10 Hz grid (:func:`resample_poses`; NaN past the clip's end is the future's
mask); history speeds are ``hypot(vx, vy)`` interpolated at the history times.

Frames: per camera, the decoded frame whose timestamp is nearest ``t0 - 0.5 s`` and nearest
``t0`` (their nominal times -0.5 and 0.0 are stored); the largest distance between a picked
frame and its nominal time goes into the metadata (``frame_offset_max_ms``). A sample with no
frame within 0.1 s of a nominal time is skipped. A video that cannot be decoded (truncated,
corrupt, or ending before a frame it needs) skips its clip: counted, and the file named in
the metadata (``unreadable_videos``) and in a logged warning. A chunk zip or parquet table
that cannot be read is an error naming the file (a damaged download: fetch it again).

Agents: the basic release has no agent boxes, so ``agents`` is empty: collision and
clearance metrics of converted samples have nothing to check against.

Licence: the data set is released under NVIDIA's Autonomous Vehicle Dataset License, which
does not allow redistribution. Converted data is derived from it: it is never committed to
this repository nor shipped with ``vla``; convert it where the downloaded data lives.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from vla.convert.common import (
    HZ,
    MIN_FUTURE_S,
    LogSample,
    ego_frame,
    fit_image,
    make_row,
    quaternion_yaw,
    resample_poses,
)
from vla.convert.writer import FRAME_GAP_S, HISTORY_S, HORIZON_S, write_converted
from vla.sim.observation import IMAGE_SIDE_MULTIPLE, MAX_IMAGE_SIDE

log = logging.getLogger(__name__)

SOURCE = "physicalai_av"
DEFAULT_CAMERAS = ("camera_front_wide_120fov", "camera_front_tele_30fov",
                   "camera_cross_left_120fov", "camera_cross_right_120fov")
#: The camera whose frame timestamps ``event_start_frame`` indexes.
EVENT_FRAME_CAMERA = "camera_front_wide_120fov"
#: Log after an event's start that an event sample needs (NVIDIA's loaders: 6.4 s).
EVENT_AFTER_S = 6.4
#: Grid samples keep at least this far from any reasoning event's start.
EVENT_CLEARANCE_S = 1.0
#: A picked camera frame farther than this from its nominal time skips the sample.
MAX_FRAME_OFFSET_S = 0.1
#: How many unreadable videos the metadata names (the count is in ``skipped``).
MAX_NAMED_UNREADABLE = 20

CLIP_INDEX = "clip_index.parquet"
FEATURES_CSV = "features.csv"
REASONING = "reasoning/ood_reasoning.parquet"
EGOMOTION = "egomotion"
EGOMOTION_COLUMNS = ("timestamp", "x", "y", "z", "qx", "qy", "qz", "qw",
                     "vx", "vy", "vz", "ax", "ay", "az", "curvature")
DEFAULT_CHUNK_PATHS = {
    EGOMOTION: "labels/egomotion/egomotion.chunk_{chunk_id:04d}.zip",
    "camera": "camera/{feature}/{feature}.chunk_{chunk_id:04d}.zip",
}
DEFAULT_CLIP_FILES = {
    EGOMOTION: {"egomotion": "{clip_id}.egomotion.parquet"},
    "camera": {"video": "{clip_id}.{feature}.mp4",
               "frame_timestamps": "{clip_id}.{feature}.timestamps.parquet"},
}

US = 1e-6  # seconds per microsecond


@dataclasses.dataclass(frozen=True)
class PhysicalAIConfig:
    """What to convert. ``root``: a local copy of the data set (see the module docstring);
    ``out``: the data set to write (must not exist); ``cameras``: the data set's camera names,
    kept as the samples' camera names; ``grid_s``: the spacing of the samples between
    reasoning events; ``seed``: the split's seed."""

    root: str | Path
    out: str | Path
    cameras: tuple[str, ...] = DEFAULT_CAMERAS
    image_width: int = 224
    image_height: int = 112
    grid_s: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "out", Path(self.out))
        if isinstance(self.cameras, str):
            raise ValueError(f"cameras must be a sequence of camera names, got the string "
                             f"{self.cameras!r}")
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if not self.cameras:
            raise ValueError("cameras: at least one camera is needed")
        for name in self.cameras:
            if not isinstance(name, str) or not name.startswith("camera_"):
                raise ValueError(f"cameras: {name!r} is not a PhysicalAI-AV camera name "
                                 f"(e.g. {DEFAULT_CAMERAS[0]!r})")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras repeat: {self.cameras}")
        for name in ("image_width", "image_height"):
            side = getattr(self, name)
            if (not isinstance(side, int) or isinstance(side, bool)
                    or not 0 < side <= MAX_IMAGE_SIDE or side % IMAGE_SIDE_MULTIPLE):
                raise ValueError(f"{name} must be a multiple of {IMAGE_SIDE_MULTIPLE} px in "
                                 f"[{IMAGE_SIDE_MULTIPLE}, {MAX_IMAGE_SIDE}], got {side!r}")
        if not isinstance(self.grid_s, int | float) or not 0.5 <= self.grid_s <= 60.0:
            raise ValueError(f"grid_s must be in [0.5, 60] s, got {self.grid_s!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an int, got {self.seed!r}")


@dataclasses.dataclass(frozen=True)
class ReasoningEvent:
    """One reasoning event of a clip: its start (us, the log's clock, or a frame index of
    :data:`EVENT_FRAME_CAMERA`) and its text."""

    start_us: int | None
    start_frame: int | None
    text: str


@dataclasses.dataclass
class CameraTrack:
    """One camera of one clip: where its video is and its frame timestamps (us)."""

    name: str
    zip_path: Path
    video_member: str
    timestamps_us: np.ndarray


class Layout:
    """Where a feature's files are: ``features.csv``'s templates, or the default names."""

    def __init__(self, root: Path):
        self.root = root
        self.table: dict[str, tuple[str, dict[str, str]]] = {}
        path = root / FEATURES_CSV
        if path.is_file():
            import pandas as pd

            frame = pd.read_csv(path, index_col="feature")
            for column in ("chunk_path", "clip_files_in_zip"):
                if column not in frame.columns:
                    raise ValueError(f"{path}: no {column!r} column (columns: "
                                     f"{list(frame.columns)})")
            for feature, row in frame.iterrows():
                files = row["clip_files_in_zip"]
                if isinstance(files, str) and isinstance(row["chunk_path"], str):
                    self.table[str(feature)] = (row["chunk_path"], json.loads(files))

    def _templates(self, feature: str) -> tuple[str, dict[str, str]]:
        if feature in self.table:
            return self.table[feature]
        kind = EGOMOTION if feature == EGOMOTION else "camera"
        return (DEFAULT_CHUNK_PATHS[kind].replace("{feature}", feature),
                {k: v.replace("{feature}", feature) for k, v in DEFAULT_CLIP_FILES[kind].items()})

    def chunk_file(self, feature: str, chunk: int) -> Path:
        return self.root / self._templates(feature)[0].format(chunk_id=int(chunk))

    def clip_files(self, feature: str, clip_id: str) -> dict[str, str]:
        return {k: v.format(clip_id=clip_id) for k, v in self._templates(feature)[1].items()}

    def feature_folder(self, feature: str) -> Path:
        return self.chunk_file(feature, 0).parent


def read_clip_index(root: Path) -> list[tuple[str, int]]:
    """``(clip_id, chunk)`` of every clip of ``clip_index.parquet``, in its order."""
    import pandas as pd

    path = root / CLIP_INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no clip index (is {root} a PhysicalAI-AV folder?)")
    frame = pd.read_parquet(path)
    if "clip_id" in frame.columns:
        frame = frame.set_index("clip_id")
    if "chunk" not in frame.columns:
        raise ValueError(f"{path}: no 'chunk' column (columns: {list(frame.columns)})")
    return [(str(clip), int(chunk)) for clip, chunk in zip(frame.index, frame["chunk"],
                                                           strict=True)]


def parse_events(cell, where: str) -> list[ReasoningEvent]:
    """The events of one ``events`` cell (a JSON list, or an already decoded list), each with
    ``event_start_timestamp`` or ``event_start_frame`` and ``coc`` or ``cot``; an event with
    neither start gets both None (the caller counts it)."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    if isinstance(cell, bytes | str):
        try:
            cell = json.loads(cell) if str(cell).strip() else []
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: events is not valid JSON ({exc})") from exc
    if isinstance(cell, np.ndarray):
        cell = cell.tolist()
    if not isinstance(cell, list):
        raise ValueError(f"{where}: events must be a list, got {type(cell).__name__}")
    events = []
    for i, event in enumerate(cell):
        if not isinstance(event, dict):
            raise ValueError(f"{where}: event {i} is not an object: {event!r}")
        start_us = event.get("event_start_timestamp")
        start_frame = event.get("event_start_frame")
        text = event.get("coc", event.get("cot"))
        events.append(ReasoningEvent(
            start_us=None if start_us is None else int(start_us),
            start_frame=None if start_us is not None or start_frame is None
            else int(start_frame),
            text="" if text is None else str(text).strip()))
    return events


def read_reasoning(root: Path) -> dict[str, list[ReasoningEvent]] | None:
    """The reasoning events of every clip of ``reasoning/ood_reasoning.parquet``; None when
    the file is absent (then only grid samples are made)."""
    import pandas as pd

    path = root / REASONING
    if not path.is_file():
        return None
    frame = pd.read_parquet(path)
    if "clip_id" in frame.columns:
        frame = frame.set_index("clip_id")
    if "events" not in frame.columns:
        raise ValueError(f"{path}: no 'events' column (columns: {list(frame.columns)})")
    out: dict[str, list[ReasoningEvent]] = {}
    for clip_id, cell in zip(frame.index, frame["events"], strict=True):
        out.setdefault(str(clip_id), []).extend(parse_events(cell, f"{path} clip {clip_id}"))
    return out


def zip_names(path: Path) -> set[str]:
    """The member names of the zip file ``path`` (``ValueError`` naming it if unreadable)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable zip file ({exc})") from exc


def zip_members(path: Path, members: list[str]) -> dict[str, bytes]:
    """The bytes of those of ``members`` that the zip file ``path`` holds. A file that is not
    a readable zip raises ``ValueError`` naming it."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            return {m: archive.read(m) for m in members if m in names}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable zip file ({exc})") from exc


def read_parquet_bytes(data: bytes, where: str):
    """A parquet file's table (pandas); one that cannot be read raises ``ValueError`` naming
    ``where``."""
    import pandas as pd

    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises its own error types
        raise ValueError(f"{where}: not a readable parquet file ({exc})") from exc


def read_egomotion(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times_s, poses (N, 3: x, y, yaw), speeds)`` of an egomotion table, sorted by time
    with repeated timestamps dropped."""
    frame = read_parquet_bytes(data, where)
    missing = [c for c in EGOMOTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: egomotion lacks columns {missing} (has "
                         f"{list(frame.columns)})")
    frame = frame.sort_values("timestamp").drop_duplicates("timestamp")
    times = frame["timestamp"].to_numpy(np.float64) * US
    yaw = quaternion_yaw(*(frame[c].to_numpy(np.float64) for c in ("qw", "qx", "qy", "qz")))
    poses = np.column_stack([frame["x"].to_numpy(np.float64), frame["y"].to_numpy(np.float64),
                             yaw])
    speeds = np.hypot(frame["vx"].to_numpy(np.float64), frame["vy"].to_numpy(np.float64))
    if len(times) < 2 or not np.isfinite(poses).all() or not np.isfinite(speeds).all():
        raise ValueError(f"{where}: egomotion needs at least 2 rows of finite values")
    return times, poses, speeds


def decode_frames(data: bytes, indices: set[int], width: int, height: int,
                  where: str) -> dict[int, bytes]:
    """The frames ``indices`` (in presentation order) of an encoded video, fitted to
    ``width`` x ``height`` as PNG. Decoding stops after the last one asked for. Raises
    ``ValueError`` naming ``where`` when the video cannot be decoded or ends too early."""
    import av

    out: dict[int, bytes] = {}
    last = max(indices)
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise ValueError(f"{where}: no video stream")
            for index, frame in enumerate(container.decode(video=0)):
                if index in indices:
                    out[index] = fit_image(frame.to_ndarray(format="rgb24"), width, height,
                                           where=f"{where} frame {index}")
                if index >= last:
                    break
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"{where}: unreadable video ({exc})") from exc
    if len(out) != len(indices):
        raise ValueError(f"{where}: the video ends before frame {last} (decoded "
                         f"{len(out)} of the {len(indices)} frames needed)")
    return out


def nearest_frame(timestamps_us: np.ndarray, t_s: float) -> tuple[int, float]:
    """Index of the frame nearest ``t_s`` and its distance (s) from it."""
    t_us = t_s / US
    i = int(np.clip(np.searchsorted(timestamps_us, t_us), 1, len(timestamps_us) - 1))
    if abs(timestamps_us[i - 1] - t_us) <= abs(timestamps_us[i] - t_us):
        i -= 1
    return i, abs(float(timestamps_us[i]) - t_us) * US


@dataclasses.dataclass
class Candidate:
    """A t0 chosen in a clip (seconds, the log's clock), before its frames are decoded."""

    t0: float
    scenario: str
    reasoning: str
    #: per image, frame-major (every camera at t0 - 0.5 s, then at t0): (frame index, offset s)
    frames: list[tuple[int, float]]


class ClipConverter:
    """Turns one clip into rows, counting what it leaves out in ``skipped``."""

    def __init__(self, config: PhysicalAIConfig, layout: Layout, skipped: Counter):
        self.config = config
        self.layout = layout
        self.skipped = skipped
        self.max_offset_s = 0.0
        self.unreadable: list[str] = []
        self.samples = Counter()

    def _camera_tracks(self, clip_id: str, chunk: int) -> list[CameraTrack] | str:
        """The clip's camera tracks, or the reason the clip is skipped."""
        tracks = []
        for name in self.config.cameras:
            zip_path = self.layout.chunk_file(name, chunk)
            files = self.layout.clip_files(name, clip_id)
            if not zip_path.is_file():
                return f"lacks {name}"
            if not {files["video"], files["frame_timestamps"]} <= zip_names(zip_path):
                return f"lacks {name}"
            where = f"{zip_path}:{files['frame_timestamps']}"
            data = zip_members(zip_path, [files["frame_timestamps"]])[files["frame_timestamps"]]
            stamps = read_parquet_bytes(data, where)
            if "timestamp" not in stamps.columns:
                raise ValueError(f"{where}: no 'timestamp' column (columns: "
                                 f"{list(stamps.columns)})")
            ts = stamps["timestamp"].to_numpy(np.float64)
            if len(ts) < 2 or np.any(np.diff(ts) <= 0):
                raise ValueError(f"{where}: frame timestamps must be at least 2 and strictly "
                                 f"increasing")
            tracks.append(CameraTrack(name, zip_path, files["video"], ts))
        return tracks

    def _event_times(self, events: list[ReasoningEvent], tracks: list[CameraTrack],
                     ) -> list[tuple[float, str]]:
        """``(start s, text)`` of the events that have a start and a text; the others are
        counted."""
        reference = next((t for t in tracks if t.name == EVENT_FRAME_CAMERA), tracks[0])
        out = []
        for event in events:
            if event.start_us is not None:
                start = event.start_us * US
            elif event.start_frame is not None:
                if not 0 <= event.start_frame < len(reference.timestamps_us):
                    self.skipped["reasoning event: start frame outside the video"] += 1
                    continue
                start = float(reference.timestamps_us[event.start_frame]) * US
            else:
                self.skipped["reasoning event: no start"] += 1
                continue
            if not event.text:
                self.skipped["reasoning event: no coc / cot text"] += 1
                continue
            out.append((start, event.text))
        return out

    def _pick_frames(self, t0: float, tracks: list[CameraTrack]) -> list[tuple[int, float]] | None:
        """Per frame time and camera (frame-major), the nearest frame and its offset; None when
        one is farther than :data:`MAX_FRAME_OFFSET_S` (counted)."""
        picks = []
        for dt in (-FRAME_GAP_S, 0.0):
            for track in tracks:
                index, offset = nearest_frame(track.timestamps_us, t0 + dt)
                if offset > MAX_FRAME_OFFSET_S + 1e-9:
                    self.skipped[f"sample: no camera frame within "
                                 f"{MAX_FRAME_OFFSET_S * 1000:.0f} ms"] += 1
                    return None
                picks.append((index, offset))
        return picks

    def candidates(self, times: np.ndarray, events: list[tuple[float, str]],
                   tracks: list[CameraTrack]) -> list[Candidate]:
        """The clip's t0s: kept reasoning events, then the grid away from every event."""
        first, last = float(times[0]), float(times[-1])
        chosen: list[Candidate] = []
        seen_ms: set[int] = set()
        for start, text in sorted(events):
            if start - HISTORY_S < first - 1e-6:
                self.skipped[f"reasoning event: less than {HISTORY_S} s of history"] += 1
                continue
            if start + EVENT_AFTER_S > last + 1e-6:
                self.skipped[f"reasoning event: less than {EVENT_AFTER_S} s of log after "
                             f"it"] += 1
                continue
            if int(round(start * 1000)) in seen_ms:
                self.skipped["reasoning event: repeats an earlier start"] += 1
                continue
            seen_ms.add(int(round(start * 1000)))
            chosen.append(Candidate(start, "reasoning_event", text, []))
        starts = np.array([s for s, _ in events])
        grid = self.config.grid_s
        # up to the last t0 with the 3 s of future a sample needs (no frames decoded in vain)
        for k in range(int(np.ceil((first + HISTORY_S) / grid - 1e-9)),
                       int(np.floor((last - MIN_FUTURE_S) / grid + 1e-9)) + 1):
            t0 = k * grid
            if starts.size and np.min(np.abs(starts - t0)) < EVENT_CLEARANCE_S - 1e-9:
                continue
            if int(round(t0 * 1000)) in seen_ms:
                continue
            seen_ms.add(int(round(t0 * 1000)))
            chosen.append(Candidate(t0, "log", "", []))
        kept = []
        for candidate in sorted(chosen, key=lambda c: c.t0):
            picks = self._pick_frames(candidate.t0, tracks)
            if picks is not None:
                candidate.frames = picks
                kept.append(candidate)
        return kept

    def convert(self, clip_id: str, chunk: int, episode_id: int,
                events: list[ReasoningEvent]) -> list[dict]:
        """The rows of one clip (none when it is skipped: counted)."""
        ego_zip = self.layout.chunk_file(EGOMOTION, chunk)
        if not ego_zip.is_file():
            self.skipped["clip: chunk not on disk"] += 1
            return []
        member = self.layout.clip_files(EGOMOTION, clip_id)["egomotion"]
        found = zip_members(ego_zip, [member])
        if not found:
            self.skipped["clip: no egomotion in its chunk"] += 1
            return []
        times, poses, speeds = read_egomotion(found[member], f"{ego_zip}:{member}")
        if times[-1] - times[0] < HISTORY_S + MIN_FUTURE_S:
            self.skipped[f"clip: shorter than {HISTORY_S + MIN_FUTURE_S:.1f} s "
                         f"({HISTORY_S} s of history + {MIN_FUTURE_S} s of future)"] += 1
            return []
        tracks = self._camera_tracks(clip_id, chunk)
        if isinstance(tracks, str):
            self.skipped[f"clip: {tracks}"] += 1
            return []
        candidates = self.candidates(times, self._event_times(events, tracks), tracks)
        if not candidates:
            return []
        images = self._decode(clip_id, tracks, candidates)
        if images is None:
            return []
        return self._rows(clip_id, episode_id, times, poses, speeds, tracks, candidates, images)

    def _decode(self, clip_id: str, tracks: list[CameraTrack],
                candidates: list[Candidate]) -> list[dict[int, bytes]] | None:
        """Per camera, the PNG of every frame the candidates pick; None when a video cannot
        be decoded (the clip is skipped: counted and named)."""
        n_cam = len(tracks)
        images = []
        for c, track in enumerate(tracks):
            wanted = {cand.frames[j][0] for cand in candidates for j in (c, n_cam + c)}
            where = f"{track.zip_path}:{track.video_member}"
            try:
                data = zip_members(track.zip_path, [track.video_member])[track.video_member]
                images.append(decode_frames(data, wanted, self.config.image_width,
                                            self.config.image_height, where))
            except ValueError as exc:
                self.skipped["clip: unreadable video"] += 1
                if len(self.unreadable) < MAX_NAMED_UNREADABLE:
                    self.unreadable.append(str(exc))
                log.warning("%s: clip %s skipped: %s", SOURCE, clip_id, exc)
                return None
        return images

    def _rows(self, clip_id, episode_id, times, poses, speeds, tracks, candidates,
              images) -> list[dict]:
        n_cam = len(tracks)
        hist_steps = int(round(HISTORY_S * HZ))
        fut_steps = int(round(HORIZON_S * HZ))
        rows = []
        for cand in candidates:
            hist_t = cand.t0 + np.arange(-hist_steps, 1) / HZ
            fut_t = cand.t0 + np.arange(1, fut_steps + 1) / HZ
            hist_world = resample_poses(times, poses, hist_t)
            fut_world = resample_poses(times, poses, fut_t)
            pose0 = hist_world[-1].copy()
            sample = LogSample(
                sample_id=f"{clip_id}-{int(round(cand.t0 * 1000))}",
                episode_id=episode_id,
                source=SOURCE,
                scenario=cand.scenario,
                t0=cand.t0,
                images=[images[j % n_cam][index] for j, (index, _) in enumerate(cand.frames)],
                camera_names=[t.name for t in tracks] * 2,
                frame_times=[-FRAME_GAP_S] * n_cam + [0.0] * n_cam,
                history=ego_frame(hist_world, pose0),
                history_speed=np.interp(hist_t, times, speeds),
                future=ego_frame(fut_world, pose0),
                agents=[], agents_annotated=False,
                reasoning=cand.reasoning,
            )
            try:
                rows.append(make_row(sample))
            except ValueError:
                self.skipped[f"sample: less than {MIN_FUTURE_S} s of future"] += 1
                continue
            self.samples[cand.scenario] += 1
            self.max_offset_s = max(self.max_offset_s, max(o for _, o in cand.frames))
        return rows


def convert_physicalai_av(config: PhysicalAIConfig) -> dict:
    """Convert the clips under ``config.root`` into the data set ``config.out`` (see the
    module docstring); returns its metadata (``skipped`` counts by reason; the conversion's
    numbers under ``clips``, ``samples_by_scenario``, ``frame_offset_max_ms``...). Nothing is
    left in ``out`` when it fails."""
    root, out = config.root, config.out
    if out.exists():
        raise FileExistsError(f"{out} already exists; remove it or choose another --out")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    clips = read_clip_index(root)
    layout = Layout(root)
    for name in config.cameras:
        folder = layout.feature_folder(name)
        if not folder.is_dir():
            raise FileNotFoundError(f"camera {name!r}: no {folder} folder under {root} "
                                    f"(not downloaded, or not a camera of this data set)")
    reasoning = read_reasoning(root)
    if reasoning is None:
        log.warning("%s: no %s under %s: only grid samples (no reasoning)", SOURCE,
                    REASONING, root)
    cpu_start = time.process_time()
    skipped: Counter = Counter()
    converter = ClipConverter(config, layout, skipped)
    rows: list[dict] = []
    converted = 0
    for episode_id, (clip_id, chunk) in enumerate(clips):
        clip_rows = converter.convert(clip_id, chunk, episode_id,
                                      (reasoning or {}).get(clip_id, []))
        converted += bool(clip_rows)
        rows.extend(clip_rows)
    cpu_s = time.process_time() - cpu_start
    extra = {
        "clips": {"listed": len(clips), "converted": converted},
        "keyframes_per_min_per_core": round(len(rows) / max(cpu_s, 1e-9) * 60, 1),
        "samples_by_scenario": dict(sorted(converter.samples.items())),
        "grid_s": float(config.grid_s),
        "event_after_s": EVENT_AFTER_S,
        "frame_offset_max_ms": round(converter.max_offset_s * 1000, 1),
        "frame_time_note": "frame_times are nominal (-0.5, 0.0 s); the picked frames lie "
                           "within frame_offset_max_ms of them",
        "reasoning_labels": REASONING if reasoning is not None else None,
        "agent_boxes": "none (no agent boxes in this release: collision metrics have nothing to "
                  "check)",
        "unreadable_videos": converter.unreadable,
        "licence": "NVIDIA Autonomous Vehicle Dataset License: do not redistribute",
    }
    return write_converted(rows, out, source=SOURCE, root=root, cameras=list(config.cameras),
                           image_size=(config.image_width, config.image_height),
                           skipped=skipped, seed=config.seed, extra=extra)
