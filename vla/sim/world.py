"""Set up a highway-env scenario with a scripted event, run it, and log everything.

We build the environment with ``gymnasium.make`` and reset it (the simulator's own
road and traffic generation), swap the ego for :class:`RecordingIDMVehicle`, apply
the scripted event, then step the road directly at ``SIM_HZ`` (no observation or
reward computation). Merge and roundabout roads are switched to highway-env's
``RegulatedRoad`` with lane priorities (main road / ring over ramp / entry), so that
the simulator's own junction-priority rule decides who yields, as it already does at
the intersection.

Coordinates: highway-env uses x right, y down; logs use a right-handed world frame
(X = x, Y = -y, yaw = -heading), so that in the ego frame y > 0 is to the left.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from vla.sim.driver import RecordingIDMVehicle
from vla.sim.recipes import ScenarioSpec

SIM_HZ = 10
DT = 1.0 / SIM_HZ
RecordingIDMVehicle.step_s = DT
LINE_TYPE_NAMES = {0: "none", 1: "striped", 2: "continuous", 3: "continuous"}


class EpisodeDropped(Exception):
    """The ego driver crashed or left the road: the episode is not used."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class LaneGeometry:
    centerline: np.ndarray  # (K, 2) world XY
    edges: tuple[np.ndarray, np.ndarray]  # two (K, 2) polylines
    edge_types: tuple[str, str]
    width: float
    name: tuple


@dataclass
class EpisodeLog:
    """Everything the sample builder needs, at ``SIM_HZ`` for ``steps + 1`` instants."""

    spec: ScenarioSpec
    seed: int
    times: np.ndarray  # (N,)
    ids: list[int]  # agent ids; ``ego_id`` among them
    ego_id: int
    state: np.ndarray  # (A, N, 5): X, Y, yaw, speed, accel; NaN when absent
    size: np.ndarray  # (A, 2): length, width
    kind: list[str]  # per agent: "car" or "stopped_vehicle"
    lane_of: np.ndarray  # (A, N) object array of lane indices (tuple) or None
    records: list[dict]  # ego driver record per step (agents as ids)
    lanes: list[LaneGeometry]
    route_turn: str  # navigation: follow_road, go_straight, turn_left, turn_right
    speed_limit: float = 30.0
    extra: dict = field(default_factory=dict)

    def index(self, agent_id: int) -> int:
        return self.ids.index(agent_id)

    @cached_property
    def lanes_by_name(self) -> dict[tuple, LaneGeometry]:
        return {lane.name: lane for lane in self.lanes}


def _env(name: str, config: dict, seed: int):
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers the environments)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(name, config={"simulation_frequency": SIM_HZ, "policy_frequency": SIM_HZ,
                                     **config})
        env.reset(seed=seed)
    return env.unwrapped


def _swap_ego(env, target_speed: float | None = None, speed: float | None = None):
    old = env.vehicle
    ego = RecordingIDMVehicle.create_from(old)
    if speed is not None:
        ego.speed = speed
    if target_speed is not None:
        ego.target_speed = target_speed
    road = env.road
    road.vehicles[road.vehicles.index(old)] = ego
    env.controlled_vehicles = [ego]
    return ego


def _safe_regulated_road():
    from highway_env.road.regulation import RegulatedRoad

    class SafeRegulatedRoad(RegulatedRoad):
        """RegulatedRoad whose conflict test tolerates routes through lanes of another width.

        highway-env's constant-speed prediction indexes the next road's lanes with the
        current lane id; on the two-lane roundabout ring that id can be out of range.
        """

        @staticmethod
        def is_conflict_possible(v1, v2, horizon: int = 3, step: float = 0.25) -> bool:
            try:
                return RegulatedRoad.is_conflict_possible(v1, v2, horizon, step)
            except (IndexError, KeyError):
                return False

    return SafeRegulatedRoad


def _regulate(road, priority_of) -> None:
    """Switch a plain Road to highway-env's RegulatedRoad with the given lane priorities."""
    for _from, tos in road.network.graph.items():
        for _to, lanes in tos.items():
            for i, lane in enumerate(lanes):
                lane.priority = priority_of((_from, _to, i), lane)
    road.__class__ = _safe_regulated_road()
    road.steps = 0


def _ahead(ego, vehicle) -> float:
    return float(np.dot(vehicle.position - ego.position, ego.direction))


def _clear_around(road, ego, behind: float, ahead: float, same_lane_only: bool = False):
    keep = []
    for v in road.vehicles:
        d = _ahead(ego, v)
        same = v.lane_index == ego.lane_index
        if v is not ego and -behind < d < ahead and (same or not same_lane_only):
            continue
        keep.append(v)
    road.vehicles[:] = keep


def _place_on_lane(road, lane_index, s: float, speed: float, target_speed: float | None = None,
                   lane_change: bool = True):
    from highway_env.vehicle.behavior import IDMVehicle

    lane = road.network.get_lane(lane_index)
    v = IDMVehicle(road, lane.position(s, 0), lane.heading_at(s), speed,
                   target_lane_index=lane_index, target_speed=target_speed or speed,
                   enable_lane_change=lane_change)
    road.vehicles.append(v)
    return v


def _once_at(event_t: float, action):
    """An event callback (time in s → None) that runs ``action`` once, at ``event_t``."""
    fired = False

    def event(t: float) -> None:
        nonlocal fired
        if t >= event_t and not fired:
            action()
            fired = True

    return event


# highway-env's intersection environment sets these on the class of the other vehicles
# (IDMVehicle) when it builds its traffic, and the change outlives the episode: without a reset,
# every later episode in the same process (another road's included) drove with junction IDM
# settings, so an episode depended on which episodes ran before it in its process.
_IDM_CLASS_SETTINGS = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")


def _idm_classes() -> list[type]:
    from highway_env.vehicle.behavior import IDMVehicle

    classes, todo = [], [IDMVehicle]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    return classes


def _own_settings(cls: type) -> dict:
    return {name: cls.__dict__[name] for name in _IDM_CLASS_SETTINGS if name in cls.__dict__}


_IDM_DEFAULTS = {cls: _own_settings(cls) for cls in _idm_classes()}


def reset_idm_class_settings() -> None:
    """Give every IDM vehicle class back the settings it had when this module was imported
    (see :data:`_IDM_CLASS_SETTINGS`)."""
    for cls in _idm_classes():
        defaults = _IDM_DEFAULTS.get(cls, {})
        for name in _IDM_CLASS_SETTINGS:
            if name in defaults:
                setattr(cls, name, defaults[name])
            elif name in cls.__dict__:
                delattr(cls, name)


def setup_scenario(spec: ScenarioSpec, seed: int):
    """Build the scenario; return (env, ego, event callback taking the time in seconds).

    Every scenario starts from highway-env's own IDM settings, whatever ran before it in this
    process (:func:`reset_idm_class_settings`); the ego driver reacts after the scenario's
    ``reaction_delay_s``."""
    reset_idm_class_settings()
    rng = np.random.default_rng(seed)
    if spec.road == "highway":
        env, ego, event = _setup_highway(spec, seed, rng)
    elif spec.road == "merge":
        env, ego, event = _setup_merge(seed, rng)
    elif spec.road == "intersection":
        env, ego, event = _setup_intersection(seed, rng)
    else:
        env, ego, event = _setup_roundabout(seed, rng)
    ego.reaction_steps = int(round(spec.reaction_delay_s / DT))
    return env, ego, event


def _setup_highway(spec: ScenarioSpec, seed: int, rng):
    lanes = int(rng.integers(3, 5))
    env = _env("highway-v0", {"lanes_count": lanes, "vehicles_count": spec.traffic,
                              "vehicles_density": float(rng.uniform(0.6, 1.2)),
                              "ego_spacing": 2}, seed)
    target = float(rng.uniform(23, 30))
    ego = _swap_ego(env, target_speed=target, speed=target - float(rng.uniform(0, 2)))
    road = env.road
    _clear_around(road, ego, behind=12, ahead=20)
    ego_lane = ego.lane_index
    s0 = road.network.get_lane(ego_lane).local_coordinates(ego.position)[0]
    event_t = float(rng.uniform(3.0, 6.5))
    side_lanes = road.network.side_lanes(ego_lane)

    if spec.event in ("free_accelerate", "free_cruise"):
        _clear_around(road, ego, behind=30, ahead=250)
        if spec.event == "free_accelerate":
            ego.speed = float(rng.uniform(10, target - 7))
        else:
            ego.speed = target
        return env, ego, lambda t: None

    if spec.event == "lead_brake":
        _clear_around(road, ego, behind=0, ahead=80, same_lane_only=True)
        lead = _place_on_lane(road, ego_lane, s0 + float(rng.uniform(22, 40)), ego.speed,
                              target_speed=ego.speed, lane_change=False)
        brake_to = float(rng.uniform(0, 10))
        return env, ego, _once_at(event_t, lambda: setattr(lead, "target_speed", brake_to))

    if spec.event == "cut_in":
        if not side_lanes:
            raise EpisodeDropped("no side lane for a cut-in")
        side = side_lanes[int(rng.integers(len(side_lanes)))]
        _clear_around(road, ego, behind=0, ahead=60, same_lane_only=True)
        cutter = _place_on_lane(road, side, s0 + float(rng.uniform(14, 24)),
                                ego.speed - float(rng.uniform(2, 6)),
                                target_speed=ego.speed - float(rng.uniform(3, 8)),
                                lane_change=False)
        return env, ego, _once_at(event_t,
                                  lambda: setattr(cutter, "target_lane_index", ego_lane))

    if spec.event == "stalled":
        from highway_env.vehicle.objects import Obstacle

        _clear_around(road, ego, behind=0, ahead=200, same_lane_only=True)
        lane = road.network.get_lane(ego_lane)
        s = s0 + float(rng.uniform(70, 120))
        road.objects.append(Obstacle(road, lane.position(s, 0), lane.heading_at(s)))
        if rng.random() < 0.5:  # block the side lanes: the ego has to stop
            for side in side_lanes:
                _clear_around(road, ego, behind=40, ahead=200)
                for k in range(6):
                    _place_on_lane(road, side, s0 - 30 + 14 * k, ego.speed,
                                   target_speed=ego.speed, lane_change=False)
        return env, ego, lambda t: None

    if spec.event == "slower_lead":
        _clear_around(road, ego, behind=0, ahead=120, same_lane_only=True)
        for side in side_lanes:  # room to overtake
            road.vehicles[:] = [v for v in road.vehicles if v.lane_index != side
                                or not -25 < _ahead(ego, v) < 80]
        slow = target - float(rng.uniform(7, 12))
        _place_on_lane(road, ego_lane, s0 + float(rng.uniform(35, 60)), slow,
                       target_speed=slow, lane_change=False)
        return env, ego, lambda t: None

    raise ValueError(f"event {spec.event!r} is not a highway event")


def _setup_merge(seed: int, rng):
    env = _env("merge-v0", {}, seed)
    road = env.road
    road.vehicles.remove(env.vehicle)
    ramp = ("j", "k", 0)
    lane = road.network.get_lane(ramp)
    speed = float(rng.uniform(14, 20))
    ego = RecordingIDMVehicle(road, lane.position(float(rng.uniform(30, 70)), 0),
                              lane.heading_at(0), speed, target_speed=speed + 4)
    road.vehicles.append(ego)
    env.vehicle = ego
    env.controlled_vehicles = [ego]
    # main-road traffic timed to arrive at the merge with the ego
    for _ in range(int(rng.integers(2, 5))):
        _place_on_lane(road, ("a", "b", 1), float(rng.uniform(40, 190)),
                       float(rng.uniform(18, 26)), lane_change=False)
    _regulate(road, lambda index, _lane: 0 if index[0] in ("j", "k") else 1)
    return env, ego, lambda t: None


def _setup_intersection(seed: int, rng):
    env = _env("intersection-v0", {"initial_vehicle_count": int(rng.integers(6, 12)),
                                   "spawn_probability": 0.0}, seed)
    ego = _swap_ego(env, speed=float(rng.uniform(6, 10)))
    ego.plan_route_to(str(rng.choice(["o1", "o2", "o3"])))
    return env, ego, lambda t: None


def _setup_roundabout(seed: int, rng):
    from highway_env.road.lane import CircularLane

    env = _env("roundabout-v0", {}, seed)
    ego = _swap_ego(env, speed=float(rng.uniform(6, 10)))
    ego.plan_route_to(str(rng.choice(["nxs", "wxs", "exs"])))
    _regulate(env.road, lambda _index, lane: 1 if isinstance(lane, CircularLane) else 0)
    return env, ego, lambda t: None
