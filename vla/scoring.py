"""Score a candidate trajectory against a sample's metric cache, without the simulator.

- collision: the ego's box (length × width, at each pose of the trajectory) against every
  agent's box at the same time step (separating-axis test on oriented rectangles); the
  cache's agents are sampled at the simulation rate, the trajectory is resampled to it;
- off-road: an ego centre farther than half a lane width (plus ``margin_m``) from every lane
  centreline in the cache (the drivable area is the union of lane strips); poses beyond the
  lanes the cache holds (it keeps those near the ego at t0) are not judged;
- progress: how far along the reference path (the expert's lane-level plan cut to the
  horizon, :mod:`vla.data.metric_cache`) the trajectory ends, over how far the ground truth
  ends (1 = as far as the expert; capped at ``progress_cap``); a lane change on either side
  does not change it, since both project onto the same path.

A cache of a converted driving log (:mod:`vla.convert`) may have no drivable area
(``"drivable": "not_available"``) or no agent boxes (``"agents_annotated": false``): off-road
or collision is then None, not available, never a verdict of 0.

Simplifications: agents keep their logged futures (no reaction to the candidate), lanes are
polylines of constant width, and only the ego centre is tested for off-road.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

COVERAGE_MARGIN_M = 5.0


@dataclass(frozen=True)
class CacheScore:
    collision: bool | None       # None: the cache has no agent boxes (a log without them)
    collision_agent: int | None
    collision_time_s: float | None
    off_road: bool | None        # None: the cache has no drivable area (a log without a map)
    progress: float | None  # None when the cache has no route or the expert does not move


def _cache(cache) -> dict:
    return json.loads(cache) if isinstance(cache, str) else cache


def _corners(x, y, yaw, length, width) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    hl, hw = length / 2, width / 2
    local = np.array([[hl, hw], [hl, -hw], [-hl, -hw], [-hl, hw]])
    return np.column_stack([x + local[:, 0] * c - local[:, 1] * s,
                            y + local[:, 0] * s + local[:, 1] * c])


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex quadrilaterals given by their corners (4, 2)."""
    for poly in (a, b):
        for i in range(4):
            edge = poly[(i + 1) % 4] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            pa, pb = a @ axis, b @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def _resample(trajectory: np.ndarray, hz: float, dt: float, steps: int) -> np.ndarray:
    """Poses at t = dt, 2 dt, ... (``steps`` of them) from a trajectory sampled at ``hz``."""
    t_src = np.arange(1, len(trajectory) + 1) / hz
    t_dst = np.arange(1, steps + 1) * dt
    t_dst = t_dst[t_dst <= t_src[-1] + 1e-9]
    yaw = np.unwrap(trajectory[:, 2])
    return np.column_stack([np.interp(t_dst, t_src, trajectory[:, i]) for i in (0, 1)]
                           + [np.interp(t_dst, t_src, yaw)])


def first_collision(trajectory: np.ndarray, cache, hz: float = 10.0,
                    ) -> tuple[int | None, float | None]:
    """(agent id, time in s) of the first overlap of the ego with an agent, or (None, None)."""
    cache = _cache(cache)
    ego, dt = cache["ego"], float(cache["dt"])
    steps = max((len(a["future"]) for a in cache["agents"]), default=0)
    poses = _resample(np.asarray(trajectory, float), hz, dt, steps)
    for k, (x, y, yaw) in enumerate(poses):
        mine = _corners(x, y, yaw, ego["length"], ego["width"])
        for agent in cache["agents"]:
            if k >= len(agent["future"]) or agent["future"][k] is None:
                continue
            ax, ay, ayaw = agent["future"][k]
            if abs(ax - x) + abs(ay - y) > ego["length"] + agent["length"] + 2 * ego["width"]:
                continue
            if boxes_overlap(mine, _corners(ax, ay, ayaw, agent["length"], agent["width"])):
                return int(agent["id"]), round((k + 1) * dt, 3)
    return None, None


def project_to_polyline(points: np.ndarray, line: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point (N, 2) onto a polyline (M, 2): its distance to the line and the arc length
    of its projection, measured from the line's first vertex."""
    a, b = line[:-1], line[1:]
    ab = b - a
    seg_len = np.linalg.norm(ab, axis=1)
    t = np.clip(((points[:, None, :] - a[None]) * ab[None]).sum(-1)
                / np.maximum(seg_len**2, 1e-12)[None], 0.0, 1.0)
    dist = np.linalg.norm(points[:, None, :] - (a[None] + t[..., None] * ab[None]), axis=-1)
    i = dist.argmin(1)
    rows = np.arange(len(points))
    start_of = np.concatenate([[0.0], np.cumsum(seg_len)[:-1]])
    return dist[rows, i], start_of[i] + t[rows, i] * seg_len[i]


def off_road(trajectory: np.ndarray, cache, margin_m: float = 0.5) -> bool:
    """True if some pose lies outside every lane strip (none in the cache: never)."""
    cache = _cache(cache)
    pts = np.asarray(trajectory, float)[:, :2]
    lanes = [lane for lane in cache["lanes"] if len(lane["centerline"]) >= 2]
    if not lanes:
        return False
    # the cache holds lanes near the ego only: poses beyond them are not judged
    reach = max(float(np.linalg.norm(lane["centerline"], axis=1).max()) for lane in lanes)
    pts = pts[np.linalg.norm(pts, axis=1) <= reach - COVERAGE_MARGIN_M]
    inside = np.zeros(len(pts), dtype=bool)
    for lane in lanes:
        dist, _ = project_to_polyline(pts, np.asarray(lane["centerline"], float))
        inside |= dist <= lane["width"] / 2 + margin_m
    return not bool(inside.all())


def _arc_position(point: np.ndarray, line: np.ndarray) -> float:
    """Arc length along ``line`` of the projection of ``point``."""
    return float(project_to_polyline(np.asarray(point, float)[None], line)[1][0])


def progress_ratio(trajectory: np.ndarray, expert: np.ndarray, cache,
                   progress_cap: float = 1.2) -> float | None:
    cache = _cache(cache)
    line = np.asarray(cache["route"]["centerline"], float)
    if len(line) < 2:
        return None
    start = _arc_position(np.zeros(2), line)
    expert_gain = _arc_position(np.asarray(expert, float)[-1, :2], line) - start
    if expert_gain < 1.0:
        return None
    gain = _arc_position(np.asarray(trajectory, float)[-1, :2], line) - start
    return float(np.clip(gain / expert_gain, 0.0, progress_cap))


def score_against_cache(trajectory: np.ndarray, expert: np.ndarray, cache,
                        hz: float = 10.0) -> CacheScore:
    cache = _cache(cache)
    agent, when = first_collision(trajectory, cache, hz)
    annotated = cache.get("agents_annotated", True)
    mapped = cache.get("drivable") != "not_available"
    return CacheScore(collision=agent is not None if annotated else None,
                      collision_agent=agent, collision_time_s=when,
                      off_road=off_road(trajectory, cache) if mapped else None,
                      progress=progress_ratio(trajectory, expert, cache))
