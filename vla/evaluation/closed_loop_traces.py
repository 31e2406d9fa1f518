"""Trace records of closed-loop episodes (:class:`vla.traces.ClosedLoopRecord`,
:class:`vla.traces.ClosedLoopEpisodeRecord`), their camera frames and top-down GIFs.

One ``closed_loop`` record per decision and one ``closed_loop_episode`` record per episode.
Camera images (the current frame of each decision) go to ``frames/<episode>/`` beside the
trace file, the GIFs to ``gifs/``; records reference both by path relative to that folder.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from vla.evaluation.closed_loop_episode import ClosedLoopConfig, Episode, EpisodeDecision
from vla.sim.frames import to_ego
from vla.sim.observation import EpisodeRenderer
from vla.sim.world import DT
from vla.traces import (
    ClosedLoopEpisodeRecord,
    ClosedLoopRecord,
    closed_loop_episode_record,
    closed_loop_record,
)

PLAN_COLOUR = (255, 140, 0)


def _save_frames(d: EpisodeDecision, frame_dir: Path, trace_dir: Path,
                 cameras: tuple[str, ...]) -> list[str]:
    """The decision's current camera images as PNG files; their paths relative to
    ``trace_dir``."""
    frame_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, part in zip(cameras, d.images, strict=True):
        path = frame_dir / f"{d.step:04d}_{name}.png"
        path.write_bytes(part["bytes"])
        paths.append(str(path.relative_to(trace_dir)))
    return paths


def episode_decision_record(episode: Episode, d: EpisodeDecision,
                    images: list[str]) -> ClosedLoopRecord:
    """The ``closed_loop`` record of one decision."""
    return closed_loop_record(
        d.output, episode=episode.id, planner=episode.planner, scenario=episode.spec.event,
        seed=episode.seed, step=d.step, t=d.step * DT, ego_speed=d.speed,
        derived_meta_action=d.meta_action, expert_meta_action=d.expert_meta_action,
        correct=d.correct, images=images, trajectory_world=d.plan_xy)


def episode_record(planner: str, event: str, seed: int, metrics: dict,
                   gif: str | None) -> ClosedLoopEpisodeRecord:
    """The ``closed_loop_episode`` record of one episode."""
    return closed_loop_episode_record(episode=f"{planner}-{event}-{seed}", planner=planner,
                                      scenario=event, seed=seed, metrics=metrics, gif=gif)


def episode_trace_records(episode: Episode, trace_dir: Path, config: ClosedLoopConfig,
                          ) -> tuple[list[ClosedLoopRecord], str | None]:
    """One ``closed_loop`` record per decision (its frames saved when ``save_frames``), and
    the GIF's path relative to ``trace_dir`` (None without ``gif``)."""
    trace_dir = Path(trace_dir)
    frame_dir = trace_dir / "frames" / episode.id
    records = []
    for d in episode.decisions:
        images = (_save_frames(d, frame_dir, trace_dir, config.sample.cameras)
                  if config.save_frames else [])
        records.append(episode_decision_record(episode, d, images))
    gif_path = None
    if config.gif:
        gif_path = str(write_gif(episode, trace_dir / "gifs" / f"{episode.id}.gif",
                                 config).relative_to(trace_dir))
    return records, gif_path


def write_gif(episode: Episode, path: Path, config: ClosedLoopConfig, every: int = 2) -> Path:
    """A top-down GIF of the episode (ego-centred), the current plan drawn in orange."""
    renderer = EpisodeRenderer(episode.log, config.sample)
    plans = {d.step: d.plan_xy for d in episode.decisions}
    frames, current = [], None
    for k in range(0, episode.end_step + 1):
        current = plans.get(k, current)
        if k % every:
            continue
        trajs = []
        if current is not None:
            pose = episode.log.state[episode.log.ego_id, k, :3]
            trajs = [(to_ego(current, pose), PLAN_COLOUR)]
        frames.append(Image.fromarray(renderer.topdown(k, trajectories=trajs)))
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(every * DT * 1000),
                   loop=0)
    return path
