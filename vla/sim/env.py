"""A closed-loop driving environment over highway-env: ``reset`` a scenario, ``step`` a plan.

:class:`DrivingEnv` runs one episode at a time:

- ``reset(scenario, seed)`` sets the scenario up exactly as the data recipe does
  (:func:`vla.sim.world.setup_scenario`, the global random states seeded too), lets the
  simulator's own driver drive the warm-up (so that a planner has a history) and returns the
  :class:`Observation` at the first decision: what the model sees in the data set (cameras
  rendered from the live state, the ego history, the navigation command:
  :func:`vla.sim.observation.observation`) and the ego's world pose;
- ``step(plan)`` puts the plan, a trajectory in the ego frame at the last observation's pose,
  into the world frame and has a pure-pursuit tracker (:mod:`vla.sim.tracker`) follow it at
  the simulation rate until the next decision, ``decision_every_s`` later; it returns the
  observation there (None once the episode is over) and the :class:`EnvStatus`.
  ``step(None)`` keeps following the previous plan.

The other vehicles react to the ego as in any highway-env run, and the scenario's scripted
event fires at its time. The episode ends at its duration, at a collision (highway-env's), or
after more than ``OFFROAD_GRACE_STEPS`` steps in a row off the lanes
(:func:`vla.sim.drivable.off_lanes`).

Self-driving mode (``reset(..., self_driving=True)``): the simulator's driver (IDM + MOBIL)
drives the whole episode and the tracker is never used; ``step()`` advances to the next
decision time, and no observation is rendered.

Every step is recorded (:class:`vla.sim.episode.EpisodeRecorder`); :meth:`DrivingEnv.log` is
the episode so far. The live ``road``, ``ego``, ``event`` callback and ``recorder`` stay
readable, for a counterfactual run on a copy of the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla.sim.drivable import off_lanes
from vla.sim.driver import TrackedVehicle
from vla.sim.episode import OFFROAD_GRACE_STEPS, EpisodeRecorder, seed_everything
from vla.sim.observation import EpisodeRenderer, SampleConfig, observation
from vla.sim.recipes import ScenarioSpec
from vla.sim.tracker import Plan, PurePursuitTracker, TrackerConfig, plan_from_ego_frame
from vla.sim.world import DT, SIM_HZ, EpisodeLog, setup_scenario


def steps_of(seconds: float) -> int:
    """Simulation steps in ``seconds``."""
    return int(round(seconds / DT))


@dataclass(frozen=True)
class EnvConfig:
    """Timing, rendering and tracking of a :class:`DrivingEnv`. Validated on construction."""

    warmup_s: float = 2.0  # the simulator's driver drives first, so a planner has a history
    decision_every_s: float = 0.5  # a plan is followed this long, then the next one is asked
    trajectory_hz: float = 10.0  # the rate of the plans handed to ``step``
    sample: SampleConfig = field(default_factory=SampleConfig)  # what an observation holds
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        for name in ("warmup_s", "decision_every_s"):
            steps = getattr(self, name) / DT
            if abs(steps - round(steps)) > 1e-6 or round(steps) < 1:
                raise ValueError(f"EnvConfig.{name} must be a positive multiple of {DT} s, "
                                 f"got {getattr(self, name)}")
        if self.warmup_s < self.sample.history_s:
            raise ValueError(f"warmup_s ({self.warmup_s}) must cover the model's "
                             f"history ({self.sample.history_s} s)")
        ratio = SIM_HZ / self.trajectory_hz if self.trajectory_hz > 0 else 0.0
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError(f"trajectory_hz ({self.trajectory_hz}) must divide the "
                             f"simulation rate ({SIM_HZ} Hz)")


@dataclass(frozen=True)
class Observation:
    """What a planner gets at a decision, simulation step ``step``.

    ``view`` is the model's input as in the data set (:func:`vla.sim.observation.observation`:
    camera images as PNG parts ``{"bytes", "path"}``, frames oldest first; the ego history,
    speed, acceleration and yaw rate; the navigation command). ``pose`` is the ego's world
    pose (x, y, yaw), the frame of the plan handed to ``step``; it is not part of the
    model's input.
    """

    step: int
    pose: np.ndarray
    view: dict

    @property
    def time_s(self) -> float:
        return self.step * DT

    def current_images(self) -> list[dict]:
        """The PNG parts of the newest frame, one per camera."""
        return [part for part, t in zip(self.view["images"], self.view["frame_times"],
                                        strict=True) if t == 0]


@dataclass(frozen=True)
class EnvStatus:
    """Where the episode is: its last simulated ``step``, and whether (and why) it ended."""

    step: int
    done: bool
    collision: bool = False
    off_road: bool = False


class DrivingEnv:
    """One highway-env episode at a time, driven by plans (see the module docstring)."""

    def __init__(self, config: EnvConfig | None = None):
        self.config = EnvConfig() if config is None else config
        self._gym = None
        self.plan: Plan | None = None  # the plan the tracker follows
        self.observation: Observation | None = None  # the last one returned

    @property
    def warmup_steps(self) -> int:
        return steps_of(self.config.warmup_s)

    @property
    def decision_steps(self) -> int:
        return steps_of(self.config.decision_every_s)

    @property
    def status(self) -> EnvStatus:
        self._require_reset()
        return self._status

    def _require_reset(self) -> None:
        if self._gym is None:
            raise RuntimeError("reset the environment first: no episode is running")

    def reset(self, scenario: ScenarioSpec, seed: int,
              self_driving: bool = False) -> Observation | None:
        """Set ``scenario`` up with ``seed``, drive the warm-up with the simulator's driver,
        and return the first decision's observation (None in self-driving mode, or when the
        episode ended in the warm-up)."""
        self.close()
        total = steps_of(scenario.duration_s)
        if total <= self.warmup_steps:
            raise ValueError(f"scenario duration_s ({scenario.duration_s}) must be longer "
                             f"than the warm-up ({self.config.warmup_s} s)")
        seed_everything(seed)
        gym_env, ego, event = setup_scenario(scenario, seed)
        ego.__class__ = TrackedVehicle  # the driver until a plan sets its controls
        gym_env.road.record_history = False
        self._gym, self.road, self.ego, self.event = gym_env, gym_env.road, ego, event
        self.scenario, self.seed, self.self_driving = scenario, seed, self_driving
        self.total_steps = total
        self.recorder = EpisodeRecorder(scenario, seed, self.road, ego, total)
        self.recorder.snapshot(0)
        self.tracker = PurePursuitTracker(self.config.tracker, wheelbase_m=float(ego.LENGTH))
        self.plan, self._renderer, self._off_run = None, None, 0
        self._status = EnvStatus(0, False)
        self._advance(self.warmup_steps)
        return self._observe()

    def step(self, plan: np.ndarray | None = None) -> tuple[Observation | None, EnvStatus]:
        """Follow ``plan`` ((T, 3) x, y, yaw, or (T, 2), in the ego frame at the last
        observation, at ``trajectory_hz`` from 1 / hz on) until the next decision; None keeps
        the previous plan, and is the only plan in self-driving mode."""
        self._require_reset()
        if self._status.done:
            raise RuntimeError(f"the episode ended at step {self._status.step}; reset the "
                               f"environment to start another")
        if self.self_driving:
            if plan is not None:
                raise ValueError("in self-driving mode the simulator's driver drives: step "
                                 "takes no plan")
        elif plan is not None:
            self.plan = plan_from_ego_frame(self._checked(plan), self.observation.pose,
                                            self.config.trajectory_hz, self._status.step * DT)
        elif self.plan is None:
            raise ValueError("no plan to follow yet: the first step after reset needs one")
        self._advance(self.decision_steps)
        return self._observe(), self._status

    def log(self) -> EpisodeLog:
        """The episode so far: steps 0 to the last simulated one."""
        self._require_reset()
        return self.recorder.log(self._status.step)

    def close(self) -> None:
        if self._gym is not None:
            self._gym.close()
            self._gym = None

    def __enter__(self) -> DrivingEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _checked(self, plan) -> np.ndarray:
        trajectory = np.asarray(plan, float)
        if trajectory.ndim != 2 or len(trajectory) < 1 or trajectory.shape[1] not in (2, 3):
            raise ValueError(f"a plan is a (T, 3) array of x, y, yaw (or (T, 2) of x, y) in the "
                             f"ego frame at {self.config.trajectory_hz} Hz; got shape "
                             f"{trajectory.shape}")
        if not np.isfinite(trajectory).all():
            rows = np.flatnonzero(~np.isfinite(trajectory).all(axis=1))
            raise ValueError(f"a plan must be finite; rows {rows[:5].tolist()} are not")
        return trajectory

    def _advance(self, steps: int) -> None:
        for _ in range(steps):
            if self._status.done:
                return
            self._sim_step()

    def _sim_step(self) -> None:
        """One simulation step: the tracker's controls (when a plan is set), the scripted
        event, every vehicle's action, the physics, the record, the end conditions."""
        j = self._status.step
        k = j + 1
        ego = self.ego
        if self.plan is not None:
            x, y = ego.position
            ego.controls = self.tracker.controls(self.plan, float(x), -float(y),
                                                 -float(ego.heading), float(ego.speed),
                                                 j * DT, DT)
        self.event(k * DT)
        self.road.act()
        self.road.step(DT)
        self.recorder.snapshot(k)
        collision, off_road = bool(ego.crashed), False
        if not collision:
            x, y = ego.position
            self._off_run = self._off_run + 1 if off_lanes((x, -y), self.recorder.lanes) else 0
            off_road = self._off_run > OFFROAD_GRACE_STEPS
        self._status = EnvStatus(k, collision or off_road or k >= self.total_steps, collision,
                                 off_road)

    def _observe(self) -> Observation | None:
        self.observation = None
        if self._status.done or self.self_driving:
            return None
        j = self._status.step
        log = self.recorder.log(j)
        if self._renderer is None:
            self._renderer = EpisodeRenderer(log, self.config.sample)
        self._renderer.log = log
        view = observation(log, self._renderer, j, self.config.sample)
        self.observation = Observation(j, log.state[log.ego_id, j, :3].copy(), view)
        return self.observation
