"""The expert's choice: what the simulator's driver would do from the current state.

At each closed-loop decision the simulator's driver is asked what it would do from the
current state, without that being applied: the live road — every vehicle, the scripted event
still to come — is deep-copied, the copied ego is handed back to the driver (its target lane
reset to the lane it is in, its route resumed from the road it is on: :func:`hand_back`; at
the first decision it never left the driver), and the copy is run for the trajectory horizon
(6 s). The data set's labeller (:func:`vla.data.labels.make_label`) reads that run exactly as
it reads a logged episode: longitudinal from the accelerations the driver commanded over the
next 3 s (``follow`` / ``yield`` from its leader and the junction rule), lateral from the lane
sequence it chose. So the reference is the label the model was trained on, for the state the
planner drove into; like the data set's labels, it knows the scripted event that is still to
come. The copy runs with the global random states saved and restored, so asking changes
nothing in the episode.

A planner's decision is its written meta-action (a model's parsed output) or, for planners
without text, the meta-action the deriver (:func:`vla.meta_action.derive_meta_action`) reads
from its plan. Accuracy (:func:`decision_correct`): a written longitudinal class must equal
the expert's (as in open-loop ``accuracy_lon``); a derived one, a kinematic class, must be one
the expert's class allows (:data:`vla.meta_action.KINEMATIC_OF`: ``follow`` allows
``keep_speed``, ``yield`` allows ``decelerate`` or ``stop``); lateral classes must be equal.
"""

from __future__ import annotations

import copy
import random
import types
from dataclasses import dataclass

import numpy as np

from vla.data.labels import make_label
from vla.meta_action import KINEMATIC_OF, MetaAction, derive_meta_action
from vla.policy import PolicyOutput
from vla.sim.episode import EpisodeRecorder
from vla.sim.frames import to_ego
from vla.sim.recipes import ScenarioSpec
from vla.sim.world import DT


@dataclass(frozen=True)
class ExpertChoice:
    """What the simulator's driver would do from a state: its label (the data set's rules)
    and its driven future, (H, 3) in the ego frame at that state, at the simulation rate."""

    meta_action: MetaAction
    trajectory: np.ndarray


def _copy_callable(fn, memo: dict):
    """``fn`` with its closure deep-copied through ``memo``: an event callback that acts on
    the copied road's vehicles (and has its own "already fired" flag)."""
    if not isinstance(fn, types.FunctionType) or not fn.__closure__:
        return fn
    cells = []
    for cell in fn.__closure__:
        key = id(cell)
        if key not in memo:
            new = memo[key] = types.CellType()
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                pass
            else:
                new.cell_contents = (_copy_callable(value, memo)
                                     if isinstance(value, types.FunctionType)
                                     else copy.deepcopy(value, memo))
        cells.append(memo[key])
    out = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__,
                             tuple(cells))
    out.__kwdefaults__ = fn.__kwdefaults__
    return out


def hand_back(vehicle) -> None:
    """Give a tracked ego back to its driver as if it had driven itself to where it is.

    A tracked ego neither consumes its route nor moves its target lane, so both are stale:
    the target lane becomes the lane it is in, and the route resumes from the road it is on.
    A lane that leaves the same junction node as a road of the route (a crossing lane the
    nearest-lane search picked inside a junction) counts as that road; off the route, the
    route is dropped and the driver follows the road network on its own.
    """
    lane = vehicle.lane_index
    route = getattr(vehicle, "route", None)
    if route:
        roads = [r[:2] for r in route]
        if lane[:2] in roads:
            del route[:roads.index(lane[:2])]
        elif any(r[0] == lane[0] for r in roads):
            i = next(i for i, r in enumerate(roads) if r[0] == lane[0])
            del route[:i]
            lane = (route[0][0], route[0][1], route[0][2] or 0)
        else:
            route.clear()
    vehicle.target_lane_index = lane


def _copy_road(road, ego, event) -> tuple:
    """(road, ego, event) deep-copied, the static lanes shared; the ego's driver records are
    left out of the copy."""
    memo: dict = {id(road.network): road.network}
    for tos in road.network.graph.values():
        for lanes in tos.values():
            for lane in lanes:
                memo[id(lane)] = lane
    records, ego.records = ego.records, []
    try:
        twin_road = copy.deepcopy(road, memo)
        twin_event = _copy_callable(event, memo)
    finally:
        ego.records = records
    return twin_road, memo[id(ego)], twin_event


def expert_choice(spec: ScenarioSpec, seed: int, road, ego, event, step: int,
                  horizon_steps: int, recorder: EpisodeRecorder | None = None) -> ExpertChoice:
    """Run the simulator's driver ahead from the live state on a copy of ``road``.

    ``step`` is the current step (the next event call is at ``step + 1``); ``recorder``, the
    live episode's, lends its lane geometry. Nothing of the live road, its vehicles or the
    global random states is changed.
    """
    states = random.getstate(), np.random.get_state()
    twin_road, twin, twin_event = _copy_road(road, ego, event)
    if getattr(twin, "controls", None) is not None:  # a planner was driving: back to the driver
        twin.controls = None
        hand_back(twin)
    shared = {} if recorder is None else {"lanes": recorder.lanes,
                                          "route_turn": recorder.route_turn}
    recorder = EpisodeRecorder(spec, seed, twin_road, twin, horizon_steps, **shared)
    try:
        recorder.snapshot(0)
        for m in range(1, horizon_steps + 1):
            twin_event((step + m) * DT)
            twin_road.act()
            twin_road.step(DT)
            recorder.snapshot(m)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    log = recorder.log()
    label = make_label(log, 0, horizon_steps)
    ego_rows = log.state[log.ego_id]
    future = to_ego(ego_rows[1:, :3], ego_rows[0, :3])
    future[:, 2] = np.unwrap(future[:, 2])
    return ExpertChoice(label.decision, future)


def ask_expert(env, horizon_steps: int) -> ExpertChoice:
    """:func:`expert_choice` from the live state of a :class:`vla.sim.env.DrivingEnv`."""
    return expert_choice(env.scenario, env.seed, env.road, env.ego, env.event,
                         env.status.step, horizon_steps, env.recorder)


def planner_meta_action(out: PolicyOutput, speed: float,
                        hz: float) -> tuple[MetaAction | None, str | None]:
    """The planner's decision: (meta-action, ``"written"`` or ``"derived"``); (None, None)
    for a model output that did not parse."""
    if out.decision is not None:
        return out.decision.meta_action, "written"
    if out.text is not None or out.trajectory is None:
        return None, None
    return derive_meta_action(out.trajectory, speed, hz), "derived"


def decision_correct(decision: MetaAction, source: str,
                     expert: MetaAction) -> tuple[bool, bool]:
    """(longitudinal, lateral) agreement with the expert's choice: a written longitudinal
    class must be the expert's, a derived (kinematic) one must be one the expert's allows."""
    if source == "written":
        lon = decision.longitudinal == expert.longitudinal
    else:
        lon = decision.longitudinal in KINEMATIC_OF[expert.longitudinal]
    return lon, decision.lateral == expert.lateral
