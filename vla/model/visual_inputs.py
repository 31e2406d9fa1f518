"""A sample's cameras as the model sees them: one short video per camera, or still images.

Qwen2.5-VL and Qwen3-VL embed pixels in patches of ``TEMPORAL_PATCH`` (2) frames; a still
image is repeated in time to fill its patch, so two frames given as two images never meet in
one patch. :func:`visual_inputs` therefore gives each camera's frames (oldest first) as one video
when their number is a multiple of ``TEMPORAL_PATCH``: with 2 frames the patch embedding sees
t - 0.5 s and t together, and the camera costs half the tokens of two images. Every camera
must have the same number of frames; with another number (a 1-frame rig) the frames stay
still images, in the sample's order, as they always were.

A video's frame rate comes from its frame times (frames over the time they span), so that
both engines space its temporal patches ``second_per_grid_ts = TEMPORAL_PATCH / fps`` apart
in M-RoPE (1.0 s for frames 0.5 s apart); Qwen3-VL instead writes each temporal patch's
mean frame time into the prompt (``<0.2 seconds>`` for frames 0.5 s apart, the first at 0).
:func:`processor_inputs` calls a transformers processor with the frames as given: no frame
sampling, the video's frame rate in its metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TEMPORAL_PATCH = 2  # frames per patch of the patch embedding (temporal_patch_size)


@dataclass(frozen=True)
class CameraImage:
    """One frame of one camera, given to the model as a still image."""

    camera: str
    time: float  # seconds relative to now (0.0 is the current frame)
    image: object


@dataclass(frozen=True)
class CameraVideo:
    """One camera's frames, oldest first, given to the model as one video."""

    camera: str
    times: tuple[float, ...]
    frames: tuple

    @property
    def fps(self) -> float:
        """Frames per second: the frame gaps' mean rate (1 / gap for 2 frames)."""
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])

    def metadata(self) -> dict:
        """The video's metadata for a transformers video processor: every frame kept."""
        n = len(self.frames)
        return {"total_num_frames": n, "fps": self.fps, "frames_indices": list(range(n))}


def visual_inputs(sample: dict, images: Sequence) -> list[CameraImage | CameraVideo]:
    """``images`` (the sample's, maybe converted or blanked) in prompt order: one
    :class:`CameraVideo` per camera (rig order: the order of the names within a frame) when
    the cameras' frame count is a multiple of :data:`TEMPORAL_PATCH`, else one
    :class:`CameraImage` per image in the sample's order.

    Raises ``ValueError`` naming the sample when the images, camera names and frame times do
    not pair up, when the cameras have different frame counts, or when a camera's frame times
    do not increase.
    """
    sid = sample.get("sample_id")
    names, times = sample["camera_names"], sample["frame_times"]
    if not (len(images) == len(names) == len(times)):
        raise ValueError(f"sample {sid}: {len(images)} images but "
                         f"{len(names)} camera names and {len(times)} frame times")
    by_camera: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        by_camera.setdefault(name, []).append(i)
    counts = {name: len(indices) for name, indices in by_camera.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"sample {sid}: every camera must have the same number of frames; "
                         f"frames per camera: {counts}")
    if not counts or next(iter(counts.values())) % TEMPORAL_PATCH:
        return [CameraImage(name, float(time), image)
                for image, name, time in zip(images, names, times, strict=True)]
    videos = []
    for name, indices in by_camera.items():
        clip_times = tuple(float(times[i]) for i in indices)
        if any(np.diff(clip_times) <= 0):
            raise ValueError(f"sample {sid}: camera {name}'s frame times must increase "
                             f"(oldest frame first), got {list(clip_times)}")
        videos.append(CameraVideo(name, clip_times, tuple(images[i] for i in indices)))
    return videos


def videos_fps(inputs: Sequence[CameraImage | CameraVideo]) -> float | None:
    """The one frame rate of the videos among ``inputs`` (None without videos); videos at
    different rates raise ``ValueError``."""
    rates = sorted({item.fps for item in inputs if isinstance(item, CameraVideo)})
    if len(rates) > 1:
        raise ValueError(f"the cameras' videos must share a frame rate, got {rates} frames "
                         f"per second")
    return rates[0] if rates else None


def default_images_per_prompt() -> int:
    """Cameras x frames of the default camera rig (:class:`vla.sim.observation.SampleConfig`)."""
    from vla.sim.observation import SampleConfig

    rig = SampleConfig()
    return len(rig.cameras) * rig.frames


def default_video_fps() -> float:
    """The frame rate of the default camera rig's videos: 1 / its frame gap (2.0 for 0.5 s)."""
    from vla.sim.observation import SampleConfig

    return 1.0 / SampleConfig().frame_gap_s


def processor_inputs(processor, texts: list[str],
                     inputs_per_text: Sequence[Sequence[CameraImage | CameraVideo]], **kwargs):
    """A transformers processor's batch (``return_tensors="pt"``) for ``texts``, the i-th
    with the visual inputs ``inputs_per_text[i]`` in its prompt order; ``kwargs`` go to the
    processor (e.g. ``padding``).

    Still images go as ``images``; videos as ``videos`` (each a list of PIL frames) with
    ``video_metadata`` (their frame rates) and ``do_sample_frames=False``, which keeps every
    frame and gives ``second_per_grid_ts`` = ``TEMPORAL_PATCH / fps``."""
    images, videos, metadata = [], [], []
    for inputs in inputs_per_text:
        for item in inputs:
            if isinstance(item, CameraVideo):
                videos.append(list(item.frames))
                metadata.append(item.metadata())
            else:
                images.append(item.image)
    media: dict = {}
    if images:
        media["images"] = images
    if videos:
        media.update(videos=videos, video_metadata=metadata, do_sample_frames=False)
    return processor(text=texts, return_tensors="pt", **media, **kwargs)
