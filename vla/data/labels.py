"""Cause-of-Change labels from the instrumented driver's own records.

At a keyframe t0 the decision comes from what the ego driver commanded and why,
never from the trajectory it then drove (that is what the deriver judges):

* the kinematic longitudinal class from the driver's *commanded* accelerations over
  the deriver's window (speed change and end speed, same thresholds); with a reaction delay,
  the accelerations it applies from t0 on, i.e. decided one delay before: the label stays
  consistent with the logged future, and at the onset of a change the cameras have shown its
  cause for a whole delay while the ego's own motion in the prompt does not show it yet;
* ``yield`` when the junction rule made it yield (or MOBIL refused a merge to spare a
  vehicle with priority) and it slows or stops; ``follow`` when it keeps speed with an
  IDM leader close enough to matter;
* lateral, from the lane-level plan: a lane change (or ramp merge) when the centreline
  of the lane the driver occupies at the lateral window lies more than the threshold
  to the left or right in the ego frame at t0; a turn when the lane it will be on at
  the horizon points more than the turn threshold away from its lane at t0.

The critical components name the agent (id, class, position and speed in the ego
frame, what it did) or the lane / junction rule, each with the observable ``facts`` the
sentence states about it (:mod:`vla.reasoning` reads the same facts back from any text);
the causal sentence cites evidence across the two frames (t0 - 0.5 s and t0) and nothing
the inputs do not show (no agent ids, no driver's target speed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from vla.meta_action import (
    DEFAULT_THRESHOLDS,
    MetaAction,
    classify_longitudinal,
    derive_meta_action,
)
from vla.sim.frames import to_ego
from vla.sim.world import DT, EpisodeLog

FRAME_GAP_S = 0.5
LEADER_RELEVANCE = 3.0  # a leader matters when its gap is below 3x the IDM desired gap
YIELD_LOOKAHEAD_S = 1.0

LON_PHRASE = {"stop": "stop", "yield": "yield", "follow": "follow it", "decelerate": "decelerate",
              "keep_speed": "keep speed", "accelerate": "accelerate"}
LAT_PHRASE = {"keep_lane": "keep the lane", "lane_change_left": "change lane to the left",
              "lane_change_right": "change lane to the right", "turn_left": "turn left",
              "turn_right": "turn right"}
PLACE = {"merge": "merge", "intersection": "junction", "roundabout": "roundabout"}


@dataclass
class Label:
    decision: MetaAction
    critical: list[dict]
    reasoning: str

    def critical_json(self) -> str:
        return json.dumps(self.critical)


def _kinematic_from_commands(log: EpisodeLog, k0: int) -> str:
    """The deriver's longitudinal rule applied to the speeds the driver *commanded* (applied:
    with a reaction delay, the commands decided one delay earlier)."""
    n = int(round(DEFAULT_THRESHOLDS.lon_window_s / DT))
    v0 = float(log.state[log.ego_id, k0, 3])
    v, speeds = max(0.0, v0), []
    for record in log.records[k0:k0 + n]:
        v = max(0.0, v + record.get("applied_accel", record["commanded_accel"]) * DT)
        speeds.append(v)
    return classify_longitudinal(v0, float(np.mean(speeds[-3:])))


def planned_path(log: EpisodeLog, k0: int, horizon_steps: int) -> np.ndarray:
    """The driver's lane-level plan as a trajectory (ego frame at t0, like ``future``).

    At each future step: the point of the occupied lane's centreline nearest to the
    driver, with that lane's heading (not the vehicle's). The occupied lane follows the
    road graph: a lane the simulator assigns that neither leaves the same node as the
    previous one (side lane, branch) nor continues it (successor) is ignored: that is a
    crossing lane inside a junction.
    """
    ego = log.ego_id
    lanes = log.lanes_by_name
    current = log.lane_of[ego, k0]
    rows = []
    last = len(log.times) - 1
    for k in range(k0 + 1, min(k0 + horizon_steps, last) + 1):
        name = log.lane_of[ego, k]
        if name is not None and name in lanes and (current is None or (
                name[0] == current[0] or name[0] == current[1])):
            current = name
        lane = lanes.get(current)
        xy = log.state[ego, k, :2]
        if lane is None:
            rows.append([xy[0], xy[1], log.state[ego, k, 2]])
            continue
        c = lane.centerline
        i = int(np.argmin(np.linalg.norm(c - xy, axis=1)))
        j = min(i + 1, len(c) - 1)
        i = j - 1 if j == i else i
        d = c[j] - c[i]
        seg = float(np.dot(d, d))
        t = float(np.clip(np.dot(xy - c[i], d) / seg, 0.0, 1.0)) if seg > 0 else 0.0
        point = c[i] + t * d
        rows.append([point[0], point[1], float(np.arctan2(d[1], d[0]))])
    path = to_ego(np.array(rows), log.state[ego, k0, :3])
    path[:, 2] = np.unwrap(path[:, 2])
    return path


def _lateral(log: EpisodeLog, k0: int, horizon_steps: int) -> str:
    """Lateral decision: the deriver's lateral rule applied to the driver's lane-level plan.

    The plan (:func:`planned_path`) is made of lane centrelines and lane headings, not of
    the vehicle's pose, so the check against the driven trajectory measures whether the
    driver really executed the lane sequence it chose (and how much it lagged).
    """
    path = planned_path(log, k0, horizon_steps)
    if len(path) < 2:
        return "keep_lane"
    v0 = float(log.state[log.ego_id, k0, 3])
    return derive_meta_action(path, v0, hz=1.0 / DT).lateral


def _describe(log: EpisodeLog, agent: int, k0: int, k_prev: int) -> dict:
    ego = log.ego_id
    now = to_ego(log.state[agent, k0, :3], log.state[ego, k0, :3])
    before = to_ego(log.state[agent, k_prev, :3], log.state[ego, k_prev, :3])
    speed, acc = float(log.state[agent, k0, 3]), float(log.state[agent, k0, 4])
    return {"kind": "agent", "id": int(agent), "class": log.kind[agent],
            "position_m": [round(float(now[0]), 1), round(float(now[1]), 1)],
            "speed_mps": round(speed, 1), "accel_mps2": round(acc, 1),
            "frame1_position_m": [round(float(before[0]), 1), round(float(before[1]), 1)],
            "frame1_speed_mps": round(float(log.state[agent, k_prev, 3]), 1)}


def _side_fact(y: float) -> str:
    """The fact :func:`_side` states: a vehicle in our lane is ``lead``."""
    return "lead" if abs(y) < 2.0 else "left" if y > 0 else "right"


def _side(y: float) -> str:
    if abs(y) < 2.0:
        return "in our lane"
    return "on the left" if y > 0 else "on the right"


def _yield_partner(log: EpisodeLog, k0: int) -> tuple[int | None, bool]:
    """The agent the driver yields to (or is blocked by) within the yield look-ahead, and
    whether it yields at all."""
    look = log.records[k0:k0 + int(round(YIELD_LOOKAHEAD_S / DT))]
    partner = next((r["yield_to"] for r in look if r["yielding"] and r["yield_to"] is not None),
                   None)
    if partner is None:
        partner = next((r["blocked_by"] for r in look if r["blocked_by"] is not None), None)
    yielding = any(r["yielding"] for r in look) or partner is not None
    return partner, yielding


def _leader_matters(rec: dict) -> bool:
    """The driver's IDM leader is close enough to matter (gap below ``LEADER_RELEVANCE``
    times the desired gap)."""
    return bool(rec["leader"] is not None and rec["gap"] is not None and rec["desired_gap"]
                and 0 < rec["gap"] < LEADER_RELEVANCE * rec["desired_gap"])


def _longitudinal(kin: str, yielding: bool, leader_matters: bool, road: str) -> str:
    """The longitudinal decision: ``yield`` or ``follow`` where the driver's reasons say so,
    else the kinematic class of its commands."""
    if yielding and kin in ("decelerate", "stop") and road != "highway":
        return "yield"
    if kin == "keep_speed" and leader_matters:
        return "follow"
    return kin


def _action_phrase(lon: str, lat: str) -> str:
    """The sentence's closing clause: what we do about it."""
    if lon == "follow" and lat != "keep_lane":
        return f"so keep speed and {LAT_PHRASE[lat]}"
    return f"so {LON_PHRASE[lon]} and {LAT_PHRASE[lat]}"


def _yield_label(log: EpisodeLog, k0: int, k_prev: int, partner: int | None,
                 decision: MetaAction, action: str) -> Label:
    """A ``yield`` label: the place's priority rule, and the vehicle with right of way when
    it is on the road at t0."""
    place = PLACE.get(log.spec.road, "junction")
    critical = [{"kind": "rule", "rule": f"{place}_priority", "facts": ["priority", place]}]
    if partner is not None and not np.isnan(log.state[partner, k0, 0]):
        a = _describe(log, partner, k0, k_prev)
        a["motion"] = "has_priority"
        a["facts"] = [_side_fact(a["position_m"][1])]
        critical.insert(0, a)
        d1 = float(np.hypot(*a["frame1_position_m"]))
        d2 = float(np.hypot(*a["position_m"]))
        sentence = (f"A car {_side(a['position_m'][1])} has right of way at "
                    f"the {place}: it is {d2:.0f} m away, {d1:.0f} m in frame 1 and "
                    f"{d2:.0f} m in frame 2, driving {a['speed_mps']:.0f} m/s, {action}.")
    else:
        sentence = f"Traffic with right of way is crossing the {place} ahead, {action}."
    return Label(decision, critical, sentence)


def _cause_agent(log: EpisodeLog, k0: int, k_prev: int, lat: str,
                 leader_matters: bool) -> int | None:
    """The agent that causes the decision, seen in both frames: the leader a lane change
    leaves, else a leader that matters; None when there is none."""
    rec = log.records[k0]
    cause_agent = None
    reason = rec.get("lane_change_reason")
    if lat.startswith("lane_change") and reason and reason.get("old_leader") is not None:
        cause_agent = reason["old_leader"]
    elif leader_matters:
        cause_agent = rec["leader"]
    if cause_agent is not None and not np.isnan(log.state[cause_agent, k0, 0]) \
            and not np.isnan(log.state[cause_agent, k_prev, 0]):
        return cause_agent
    return None


def _agent_label(log: EpisodeLog, agent: int, k0: int, k_prev: int, v0: float,
                 decision: MetaAction, action: str) -> Label:
    """A label caused by one agent: what it does across the two frames (stopped, cutting
    in, braking, slower than us, leading) and the sentence that cites it."""
    lon, lat = decision.longitudinal, decision.lateral
    a = _describe(log, agent, k0, k_prev)
    g1, g2 = a["frame1_position_m"][0], a["position_m"][0]
    y1, y2 = a["frame1_position_m"][1], a["position_m"][1]
    v1, v2 = a["frame1_speed_mps"], a["speed_mps"]
    name = "stopped vehicle" if log.kind[agent] != "car" else "car"
    if log.kind[agent] != "car" or v2 < 0.5:
        a["motion"] = "stopped"
        a["facts"] = ["stopped", "lead"]
        sentence = (f"A {name} is stopped in our lane {g2:.0f} m ahead: "
                    f"it did not move between frame 1 and frame 2 while the gap shrank from "
                    f"{g1:.0f} m to {g2:.0f} m, {action}.")
    elif abs(y1) - abs(y2) > 0.5 and abs(y1) > 1.5:
        a["motion"] = "cutting_in"
        side = "left" if y1 > 0 else "right"
        a["facts"] = ["cutting_in", side]
        sentence = (f"A car from the {side} lane is cutting in "
                    f"{g2:.0f} m ahead: its lateral offset went from {abs(y1):.1f} m in "
                    f"frame 1 to {abs(y2):.1f} m in frame 2, {action}.")
    elif (a["accel_mps2"] < -1.0 or v2 < v1 - 0.6) and lon != "accelerate":
        # (a braking leader we still speed up behind is not why we act: "leading")
        a["motion"] = "braking"
        a["facts"] = ["lead", "braking"]
        sentence = (f"The lead car {g2:.0f} m ahead is braking, brake "
                    f"lights on in frame 2: its speed fell from {v1:.0f} to {v2:.0f} m/s "
                    f"and the gap shrank from {g1:.0f} m to {g2:.0f} m between frame 1 and "
                    f"frame 2, {action}.")
    elif lat.startswith("lane_change"):
        a["motion"] = "slower"
        side = "left" if lat.endswith("left") else "right"
        a["facts"] = ["lead", "slower", f"room_{side}"]
        sentence = (f"The car ahead drives {v2:.0f} m/s, slower than our "
                    f"{v0:.0f} m/s, and the gap went from {g1:.0f} m to {g2:.0f} m between "
                    f"frame 1 and frame 2 while the {side} lane has room, {action}.")
    else:
        a["motion"] = "leading"
        a["facts"] = ["lead"]
        sentence = (f"The lead car is {g2:.0f} m ahead at {v2:.0f} m/s "
                    f"(gap {g1:.0f} m in frame 1, {g2:.0f} m in frame 2; we drive "
                    f"{v0:.0f} m/s), {action}.")
    a["relation"] = "lead" if abs(y2) < 2.5 else "adjacent"
    return Label(decision, [a], sentence)


def _clear_way_label(log: EpisodeLog, k0: int, v0: float, decision: MetaAction,
                     action: str) -> Label:
    """A label with no agent to cite: the lane ahead is clear (and, for a turn, the route
    turns at the junction)."""
    # the driver's target speed is hidden (not in the cameras nor the prompt): never cited
    rec = log.records[k0]
    lat = decision.lateral
    free = float(rec["gap"]) if rec["gap"] is not None else None
    lane_state = {"kind": "lane", "lane": "ego_lane", "state": "clear",
                  "free_m": round(free, 0) if free is not None else None, "facts": ["clear"]}
    critical = [lane_state]
    clear = f"clear for {free:.0f} m" if free is not None else "clear"
    if lat.startswith("turn"):
        place = PLACE.get(log.spec.road, "junction")
        critical.append({"kind": "route", "command": log.route_turn,
                         "facts": [f"route_{lat.split('_')[1]}", place]})
        sentence = (f"The route {lat.replace('_', 's ')} at the {place} and the way ahead is "
                    f"{clear}; we drive {v0:.0f} m/s, {action}.")
    else:
        sentence = f"The lane ahead is {clear} and we drive {v0:.0f} m/s, {action}."
    return Label(decision, critical, sentence)


def make_label(log: EpisodeLog, k0: int, horizon_steps: int) -> Label:
    """The Cause-of-Change label of the keyframe at step ``k0``: the decision from the
    driver's commands and plan, then the critical components and the sentence of the first
    cause that applies (a yield, an agent, else the clear way)."""
    k_prev = max(0, k0 - int(round(FRAME_GAP_S / DT)))
    v0 = float(log.state[log.ego_id, k0, 3])
    kin = _kinematic_from_commands(log, k0)
    lat = _lateral(log, k0, horizon_steps)
    partner, yielding = _yield_partner(log, k0)
    leader_matters = _leader_matters(log.records[k0])
    lon = _longitudinal(kin, yielding, leader_matters, log.spec.road)
    decision = MetaAction(lon, lat)
    action = _action_phrase(lon, lat)
    if lon == "yield":
        return _yield_label(log, k0, k_prev, partner, decision, action)
    agent = _cause_agent(log, k0, k_prev, lat, leader_matters)
    if agent is not None:
        return _agent_label(log, agent, k0, k_prev, v0, decision, action)
    return _clear_way_label(log, k0, v0, decision, action)
