"""The ego driver: highway-env's own IDM + MOBIL driver, instrumented.

:class:`RecordingIDMVehicle` is a copy of :class:`highway_env.vehicle.behavior.IDMVehicle`
whose ``act`` and ``change_lane_policy`` also write down, at every step, what the
driver reacts to: its IDM leader (gap, desired gap, speeds), the acceleration it
commands, the lane it targets and why (MOBIL gain over a slower leader), and whether
the road's junction rule made it yield, and to whom. These records, not the policy
being trained, are the source of the causal labels.

A driver reaction delay (``reaction_steps``, set per episode from the scenario's
``reaction_delay_s``) separates the cause from the motion: the acceleration the driver
decides at step k (``commanded_accel``) is applied at step k + ``reaction_steps``
(``applied_accel``, what the labels read, so that they agree with the logged future). A
braking lead vehicle is then in the cameras for a whole delay before the ego's own
acceleration, which the prompt quotes, shows the reaction. Simplifications: one fixed delay
per episode, longitudinal only (steering, and so lane changes, act at once).
"""

from __future__ import annotations

from collections import deque

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle


class RecordingIDMVehicle(IDMVehicle):
    """IDM (longitudinal) + MOBIL (lateral) driver that logs its reasons each step.

    One change to the driver itself: braking never takes the speed below zero within a
    step (highway-env's IDM can brake through zero and roll backwards at a standstill).
    """

    step_s = 0.1  # the simulation step; braking is limited to reach exactly zero speed
    reaction_steps = 0  # steps between deciding an acceleration and applying it

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records: list[dict] = []
        self._decided: deque[float] = deque()  # accelerations decided, not yet applied
        self.lane_change_reason: dict | None = None
        self.blocked_by = None

    def act(self, action=None):
        if self.crashed:
            return
        record: dict = {"lane_index": self.lane_index}
        self.blocked_by = None
        self.follow_road()
        if self.enable_lane_change:
            self.change_lane_policy()
        steering = np.clip(self.steering_control(self.target_lane_index),
                           -self.MAX_STEERING_ANGLE, self.MAX_STEERING_ANGLE)
        front, rear = self.road.neighbour_vehicles(self, self.lane_index)
        acc = self.acceleration(ego_vehicle=self, front_vehicle=front, rear_vehicle=rear)
        record["leader"] = front
        record["gap"] = self.lane_distance_to(front) if front is not None else None
        record["desired_gap"] = self.desired_gap(self, front) if front is not None else None
        if self.lane_index != self.target_lane_index:
            t_front, t_rear = self.road.neighbour_vehicles(self, self.target_lane_index)
            acc = min(acc, self.acceleration(ego_vehicle=self, front_vehicle=t_front,
                                             rear_vehicle=t_rear))
            record["target_leader"] = t_front
        acc = float(np.clip(acc, -self.ACC_MAX, self.ACC_MAX))
        applied = self._after_reaction(acc)
        acc = max(acc, -max(self.speed, 0.0) / self.step_s)
        applied = max(applied, -max(self.speed, 0.0) / self.step_s)
        record.update(
            target_lane_index=self.target_lane_index,
            lane_change_reason=self.lane_change_reason,
            commanded_accel=acc,
            applied_accel=applied,
            target_speed=float(self.target_speed),
            yielding=bool(getattr(self, "is_yielding", False)),
            yield_to=self._yield_partner() if getattr(self, "is_yielding", False) else None,
            blocked_by=self.blocked_by,
        )
        self.records.append(record)
        Vehicle.act(self, {"steering": float(steering), "acceleration": applied})

    def _after_reaction(self, decided: float) -> float:
        """The acceleration to apply now: the one decided ``reaction_steps`` steps ago (the
        first decision stands in for the ones before the episode began)."""
        if self.reaction_steps <= 0:
            return decided
        if not self._decided:
            self._decided.extend([decided] * self.reaction_steps)
        self._decided.append(decided)
        return self._decided.popleft()

    def change_lane_policy(self) -> None:
        before = self.target_lane_index
        super().change_lane_policy()
        if self.target_lane_index != before and self.target_lane_index != self.lane_index:
            old_front, _ = self.road.neighbour_vehicles(self, self.lane_index)
            new_front, _ = self.road.neighbour_vehicles(self, self.target_lane_index)
            self.lane_change_reason = {"old_leader": old_front, "new_leader": new_front,
                                       "speed": float(self.speed)}
        elif self.target_lane_index == self.lane_index:
            self.lane_change_reason = None

    def mobil(self, lane_index) -> bool:
        accepted = super().mobil(lane_index)
        if not accepted:
            _, new_following = self.road.neighbour_vehicles(self, lane_index)
            if new_following is not None and self.acceleration(
                    ego_vehicle=new_following, front_vehicle=self) \
                    < -self.LANE_CHANGE_MAX_BRAKING_IMPOSED:
                self.blocked_by = new_following  # a lane change refused to spare this vehicle
        return accepted

    def _yield_partner(self):
        """The vehicle the junction rule made us yield to: the nearest one in conflict."""
        best, best_d = None, np.inf
        for other in self.road.vehicles:
            if other is self:
                continue
            if self.road.is_conflict_possible(self, other):
                d = float(np.linalg.norm(other.position - self.position))
                if d < best_d:
                    best, best_d = other, d
        return best


class TrackedVehicle(RecordingIDMVehicle):
    """The ego of a closed-loop run: the recording driver until ``controls`` is set, then
    exactly those controls (steering, acceleration) at every step."""

    controls: dict | None = None

    def act(self, action=None):
        if self.controls is None:
            return super().act(action)
        Vehicle.act(self, dict(self.controls))
