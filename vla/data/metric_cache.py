"""The metric cache: what is needed to score any candidate trajectory without the simulator.

Per sample, in the ego frame at t0, at the simulation rate over the horizon:

* ``agents``: every other agent within ``radius`` m: id, class, length, width and its
  future pose (x, y, yaw) at each step (``null`` once it has left the simulation);
* ``lanes``: lane centerlines within ``radius`` m with their width; the drivable area
  is the union of lane strips, i.e. the points within width / 2 of a centerline;
* ``route``: the reference path (the driver's lane-level plan from the ego's position, cut
  to the horizon and extended straight on), the lanes it runs through, and the navigation
  command;
* ``ego``: its size, speed and the speed limit.
"""

from __future__ import annotations

import json

import numpy as np

from vla.data.labels import planned_path
from vla.sim.frames import to_ego
from vla.sim.world import DT, EpisodeLog

REFERENCE_EXTENSION_M = 30.0


def _r(a, nd: int = 2):
    return np.round(np.asarray(a, float), nd).tolist()


def build_metric_cache(log: EpisodeLog, k0: int, horizon_steps: int, radius: float = 120.0,
                       ) -> dict:
    ego = log.ego_id
    pose = log.state[ego, k0, :3]
    k1 = k0 + horizon_steps
    agents = []
    for a in log.ids:
        if a == ego or np.isnan(log.state[a, k0, 0]):
            continue
        if np.hypot(*(log.state[a, k0, :2] - pose[:2])) > radius:
            continue
        fut = to_ego(log.state[a, k0 + 1:k1 + 1, :3], pose)
        rows = [None if np.isnan(p).any() else _r(p) for p in fut]
        agents.append({"id": int(a), "class": log.kind[a], "length": float(log.size[a, 0]),
                       "width": float(log.size[a, 1]), "future": rows})
    lanes = []
    for lane in log.lanes:
        c = lane.centerline
        near = np.linalg.norm(c - pose[:2], axis=1) < radius
        if near.sum() >= 2:
            lanes.append({"name": list(map(str, lane.name)), "width": lane.width,
                          "centerline": _r(to_ego(c[near], pose), 1)})
    route_names = []
    for k in range(k0, min(k1 + 1, len(log.times))):
        name = log.lane_of[ego, k]
        if name is not None and (not route_names or route_names[-1] != name):
            route_names.append(name)
    # the reference path: the driver's lane-level plan from the ego's position, cut to the
    # horizon (whole lane centrelines would run kilometres past it and jump back at a lane
    # change), extended straight on by REFERENCE_EXTENSION_M so that a candidate that drives
    # farther than the expert still projects past the path's end
    plan = planned_path(log, k0, horizon_steps)[:, :2]
    route = np.vstack([[0.0, 0.0], plan])
    if len(route) >= 2 and np.linalg.norm(route[-1] - route[-2]) > 1e-6:
        d = route[-1] - route[-2]
        route = np.vstack([route, route[-1] + d / np.linalg.norm(d) * REFERENCE_EXTENSION_M])
    return {
        "dt": DT,
        "agents": agents,
        "lanes": lanes,
        "route": {"lanes": [list(map(str, n)) for n in route_names],
                  "centerline": _r(route, 1),
                  "command": log.route_turn},
        "ego": {"length": float(log.size[ego, 0]), "width": float(log.size[ego, 1]),
                "speed": float(log.state[ego, k0, 3]), "speed_limit": log.speed_limit},
    }


def dumps(cache: dict) -> str:
    return json.dumps(cache, separators=(",", ":"))
