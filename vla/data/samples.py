"""Turn an episode log into samples: keyframes, camera images, history, future, label, cache."""

from __future__ import annotations

import numpy as np

from vla.data.labels import Label, make_label
from vla.data.metric_cache import build_metric_cache, dumps
from vla.sim.frames import to_ego, unwrap_yaw
from vla.sim.observation import EpisodeRenderer, SampleConfig, observation, png_bytes
from vla.sim.world import DT, EpisodeLog


def keyframe_labels(log: EpisodeLog, config: SampleConfig) -> dict[int, Label]:
    """Label of each keyframe: every ``keyframe_every_s``, plus one at the onset of each change
    of decision (the first step whose decision differs from the keyframe's before it).

    The onset keyframes are the samples where the decision precedes the ego's reaction: the
    driver has decided, but (with a reaction delay) its acceleration in the prompt does not
    show it yet."""
    start = config.steps(config.history_s)
    stop = len(log.times) - 1 - config.steps(config.horizon_s)
    every = config.steps(config.keyframe_every_s)
    horizon = config.steps(config.horizon_s)
    base = list(range(start, stop + 1, every))
    labels = {k: make_label(log, k, horizon) for k in base}
    for prev, k in zip(base, base[1:], strict=False):
        if labels[prev].decision == labels[k].decision:
            continue
        for step in range(prev + 1, k):
            label = make_label(log, step, horizon)
            if label.decision != labels[prev].decision:
                labels[step] = label
                break
    return dict(sorted(labels.items()))


def episode_samples(log: EpisodeLog, episode_id: int, config: SampleConfig) -> list[dict]:
    """All samples of one episode, as rows ready for a ``datasets.Dataset``."""
    renderer = EpisodeRenderer(log, config)
    ego = log.ego_id
    horizon = config.steps(config.horizon_s)
    rows = []
    for k0, label in keyframe_labels(log, config).items():
        pose = log.state[ego, k0, :3]
        seen = observation(log, renderer, k0, config)
        future = unwrap_yaw(to_ego(log.state[ego, k0 + 1:k0 + horizon + 1, :3], pose))
        row = {
            "sample_id": f"{episode_id:05d}-{k0:04d}",
            "episode_id": episode_id,
            "episode_seed": log.seed,
            "scenario": log.spec.event,
            "road": log.spec.road,
            "t0": round(k0 * DT, 2),
            "images": seen["images"],
            "camera_names": seen["camera_names"],
            "frame_times": seen["frame_times"],
            "topdown": {"bytes": png_bytes(renderer.topdown(k0)), "path": None} if config.topdown
            else None,
            "history": seen["history"],
            "ego_speed": seen["ego_speed"],
            "ego_accel": seen["ego_accel"],
            "ego_yaw_rate": seen["ego_yaw_rate"],
            "command": seen["command"],
            "future": np.round(future, 3).tolist(),
            "future_valid": [True] * len(future),
            "source": "sim",
            "decision_lon": label.decision.longitudinal,
            "decision_lat": label.decision.lateral,
            "critical": label.critical_json(),
            "reasoning": label.reasoning,
            "metric_cache": dumps(build_metric_cache(log, k0, horizon)),
        }
        rows.append(row)
    return rows
