"""Run one scenario and log every agent and the ego driver's reasons at ``SIM_HZ``."""

from __future__ import annotations

import random

import numpy as np

from vla.sim.recipes import ScenarioSpec
from vla.sim.world import (
    DT,
    LINE_TYPE_NAMES,
    EpisodeDropped,
    EpisodeLog,
    LaneGeometry,
    setup_scenario,
)

OFFROAD_GRACE_STEPS = 5


def _world(xy) -> np.ndarray:
    return np.array([xy[0], -xy[1]], float)


def _lanes(road) -> list[LaneGeometry]:
    out = []
    for _from, tos in road.network.graph.items():
        for _to, lanes in tos.items():
            for i, lane in enumerate(lanes):
                n = max(2, int(np.ceil(lane.length / 2.0)) + 1)
                s = np.linspace(0, lane.length, n)
                w = lane.width_at(0)
                center = np.array([_world(lane.position(si, 0)) for si in s])
                e0 = np.array([_world(lane.position(si, -w / 2)) for si in s])
                e1 = np.array([_world(lane.position(si, w / 2)) for si in s])
                types = tuple(LINE_TYPE_NAMES.get(int(t), "none") for t in lane.line_types)
                out.append(LaneGeometry(center, (e0, e1), types, float(w), (_from, _to, i)))
    return out


def _route_turn(road, ego) -> str:
    """Navigation command from the route: heading change between first and last route lane."""
    route = getattr(ego, "route", None)
    if not route or len(route) < 2:
        return "follow_road"
    first = road.network.get_lane(ego.lane_index)
    try:
        last = road.network.get_lane((route[-1][0], route[-1][1], route[-1][2] or 0))
    except (KeyError, IndexError):
        return "follow_road"
    h0 = -first.heading_at(first.local_coordinates(ego.position)[0])
    h1 = -last.heading_at(last.length)
    d = (h1 - h0 + np.pi) % (2 * np.pi) - np.pi
    if d > 0.6:
        return "turn_left"
    if d < -0.6:
        return "turn_right"
    return "go_straight"


class EpisodeRecorder:
    """Logs every vehicle and object of a road at chosen steps into :class:`EpisodeLog` arrays.

    Agents get ids in the order they are first seen (the ego first). ``log(k)`` returns the
    log of steps 0..k, so that a closed-loop run can render cameras and read the history
    while the episode is still going.
    """

    def __init__(self, spec: ScenarioSpec, seed: int, road, ego, steps: int,
                 lanes: list | None = None, route_turn: str | None = None):
        """``lanes`` and ``route_turn``, when given, are those already read from the same
        (static) road network, e.g. by the recorder of the episode a copied road comes from."""
        self.spec, self.seed, self.road, self.ego, self.steps = spec, seed, road, ego, steps
        self._ids: dict[int, int] = {}
        self._rows: dict[int, list] = {}
        self._lane_rows: dict[int, list] = {}
        self._sizes: dict[int, tuple] = {}
        self._kinds: dict[int, str] = {}
        self.route_turn = _route_turn(road, ego) if route_turn is None else route_turn
        self.lanes = _lanes(road) if lanes is None else lanes
        self._agent_id(ego)

    def _agent_id(self, obj) -> int:
        key = id(obj)
        if key not in self._ids:
            a = self._ids[key] = len(self._ids)
            self._sizes[a] = (float(obj.LENGTH), float(obj.WIDTH))
            self._kinds[a] = "car" if hasattr(obj, "target_speed") else "stopped_vehicle"
            self._rows[a] = [None] * (self.steps + 1)
            self._lane_rows[a] = [None] * (self.steps + 1)
        return self._ids[key]

    def snapshot(self, k: int) -> None:
        for obj in list(self.road.vehicles) + list(self.road.objects):
            a = self._agent_id(obj)
            acc = float(getattr(obj, "action", {}).get("acceleration", 0.0)) \
                if hasattr(obj, "action") else 0.0
            x, y = _world(obj.position)
            self._rows[a][k] = (x, y, -float(obj.heading), float(obj.speed), acc)
            self._lane_rows[a][k] = getattr(obj, "lane_index", None)

    def log(self, last_step: int | None = None) -> EpisodeLog:
        """The log of steps 0..``last_step`` (all steps when None)."""
        n = self.steps if last_step is None else last_step
        n_agents = len(self._ids)
        state = np.full((n_agents, n + 1, 5), np.nan)
        lane_of = np.empty((n_agents, n + 1), dtype=object)
        for a in range(n_agents):
            for k, row in enumerate(self._rows[a][:n + 1]):
                if row is not None:
                    state[a, k] = row
                lane_of[a, k] = self._lane_rows[a][k]
        records = getattr(self.ego, "records", [])
        lane = self.road.network.get_lane(self.ego.lane_index)
        return EpisodeLog(spec=self.spec, seed=self.seed, times=np.arange(n + 1) * DT,
                          ids=list(range(n_agents)), ego_id=self._ids[id(self.ego)],
                          state=state,
                          size=np.array([self._sizes[a] for a in range(n_agents)]),
                          kind=[self._kinds[a] for a in range(n_agents)], lane_of=lane_of,
                          records=[_record_ids(r, self._ids) for r in records],
                          lanes=self.lanes, route_turn=self.route_turn,
                          speed_limit=float(lane.speed_limit or 30.0))


def seed_everything(seed: int) -> None:
    """Seed the global ``random`` / ``numpy.random`` states, which parts of highway-env use."""
    random.seed(seed)
    np.random.seed(seed % (2**32))


def run_episode(spec: ScenarioSpec, seed: int) -> EpisodeLog:
    """Simulate ``spec`` with ``seed``; raise :class:`EpisodeDropped` if the ego fails.

    The global random states are seeded too, so an episode does not depend on which
    episodes ran before it.
    """
    seed_everything(seed)
    env, ego, event = setup_scenario(spec, seed)
    road = env.road
    road.record_history = False
    steps = int(round(spec.duration_s / DT))
    recorder = EpisodeRecorder(spec, seed, road, ego, steps)
    offroad = 0
    recorder.snapshot(0)
    for k in range(1, steps + 1):
        event(k * DT)
        road.act()
        road.step(DT)
        recorder.snapshot(k)
        if ego.crashed:
            raise EpisodeDropped("crash")
        offroad = 0 if ego.on_road else offroad + 1
        if offroad > OFFROAD_GRACE_STEPS:
            raise EpisodeDropped("offroad")
    # the accel logged for step k is the command applied from k to k+1
    return recorder.log()


def _record_ids(record: dict, ids: dict[int, int]) -> dict:
    out = {}
    for key, value in record.items():
        if key in ("leader", "target_leader", "yield_to", "blocked_by"):
            out[key] = ids.get(id(value)) if value is not None else None
        elif key == "lane_change_reason" and value is not None:
            out[key] = {k: (ids.get(id(v)) if k.endswith("leader") and v is not None else v)
                        for k, v in value.items()}
        else:
            out[key] = value
    return out
