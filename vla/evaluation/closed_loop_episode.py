"""One closed-loop episode: a planner drives the ego through :class:`vla.sim.env.DrivingEnv`.

:func:`drive_episode` resets the environment (the scenario set up as the data recipe does,
the simulator's driver driving the warm-up), then at each decision builds the planner's
sample from the observation, asks the expert's choice from the same state
(:mod:`vla.evaluation.expert_choice`), asks the planner (a :class:`vla.policy.Policy`, greedy)
and hands its plan to the environment, which follows it until the next decision. A model
output that does not parse keeps the previous plan (before the first plan: straight on at
the current speed) and counts against the parse rate. The expert (:class:`SelfDriving`) is
the environment's self-driving mode: the simulator's driver drives, with no plan and no
decision.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from vla.evaluation.expert_choice import ask_expert, decision_correct, planner_meta_action
from vla.evaluation.scenarios import ScenarioSet
from vla.meta_action import MetaAction
from vla.policy import PolicyOutput, one
from vla.sim.env import DrivingEnv, EnvConfig, Observation
from vla.sim.observation import SampleConfig
from vla.sim.recipes import ScenarioSpec
from vla.sim.tracker import Plan, TrackerConfig
from vla.sim.world import DT, SIM_HZ
from vla.trajectory.baselines import constant_velocity
from vla.trajectory.types import ego_state_of


class SelfDriving:
    """The ``expert`` planner: the simulator's driver (IDM + MOBIL) drives the episode itself,
    never through the tracker (the environment's self-driving mode). Not a policy: it is
    never asked for a decision."""

    name = "expert"
    runs_in_workers = True


@dataclass(frozen=True)
class ClosedLoopConfig:
    scenarios: ScenarioSet
    sample: SampleConfig = field(default_factory=SampleConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    trajectory_hz: float = 10.0
    save_frames: bool = True  # each decision's current camera images, for the trace report
    gif: bool = False  # a top-down GIF of each episode

    def __post_init__(self) -> None:
        self.env_config()  # validates the timing against the sample and the tracker

    def env_config(self) -> EnvConfig:
        """The environment's configuration: the scenario set's timing, this sample and
        tracker."""
        return EnvConfig(warmup_s=self.scenarios.warmup_s,
                         decision_every_s=self.scenarios.decision_every_s,
                         trajectory_hz=self.trajectory_hz, sample=self.sample,
                         tracker=self.tracker)


@dataclass
class EpisodeDecision:
    """One decision of a planner: where it was made, what the planner answered, the plan the
    tracker followed (world x, y), and the planner's meta-action against the expert's."""

    step: int
    pose: np.ndarray  # world x, y, yaw at the decision
    speed: float
    output: PolicyOutput
    plan_xy: np.ndarray
    images: list[dict]  # the current frame's PNG parts, one per camera
    meta_action: MetaAction | None
    meta_action_source: str | None  # "written", "derived" or None (unparsed)
    expert_meta_action: MetaAction
    correct: tuple[bool, bool] | None  # (lon, lat) agreement; None without a meta-action


@dataclass
class Episode:
    """One driven episode: the world log and every decision the planner made."""

    spec: ScenarioSpec
    seed: int
    planner: str
    log: object  # EpisodeLog up to the last simulated step
    start_step: int
    end_step: int
    collision: bool
    off_road: bool
    decisions: list[EpisodeDecision]

    @property
    def id(self) -> str:
        return f"{self.planner}-{self.spec.event}-{self.seed}"

    def ego_states(self) -> np.ndarray:
        return self.log.state[self.log.ego_id, self.start_step:self.end_step + 1]


def at_rate(trajectory: np.ndarray, hz: float) -> np.ndarray:
    """A trajectory at the simulation rate, sampled at ``hz`` (from t = 1 / hz)."""
    every = int(round(SIM_HZ / hz))
    return trajectory[every - 1::every]


def planner_sample(obs: Observation, spec: ScenarioSpec, seed: int) -> dict:
    """The planner's input: the observation with decoded images; ``pose_world`` (x, y, yaw)
    is not part of the model's prompt (planners that replay a log need it)."""
    images = [Image.open(io.BytesIO(p["bytes"])).convert("RGB") for p in obs.view["images"]]
    return {**obs.view, "images": images,
            "sample_id": f"{spec.event}-{seed}@{obs.step * DT:.1f}", "scenario": spec.event,
            "pose_world": [float(v) for v in obs.pose]}


def _decide(env: DrivingEnv, obs: Observation, policy, config: ClosedLoopConfig) -> tuple:
    """Ask the expert's choice and the policy at ``obs``; (the policy's output, the expert's
    choice, the trajectory to follow: the output's, or None to keep the previous plan)."""
    sample = planner_sample(obs, env.scenario, env.seed)
    choice = ask_expert(env, config.sample.steps(config.sample.horizon_s))
    # the expert's future, as an open-loop sample carries its logged one: what
    # ``expert-tracked`` follows; a model's prompt does not read it
    sample["expert_future"] = at_rate(choice.trajectory, config.trajectory_hz)
    out = one(policy, sample)
    trajectory = out.trajectory
    if trajectory is None and env.plan is None:  # nothing to follow yet: straight on
        trajectory = constant_velocity(ego_state_of(sample))
    return out, choice, trajectory


def _decision(obs: Observation, out: PolicyOutput, expert: MetaAction, plan: Plan,
              config: ClosedLoopConfig) -> EpisodeDecision:
    speed = float(obs.view["ego_speed"])
    meta, source = planner_meta_action(out, speed, config.trajectory_hz)
    return EpisodeDecision(obs.step, obs.pose.copy(), speed, out, plan.xy.copy(),
                           obs.current_images(), meta, source, expert,
                           None if meta is None else decision_correct(meta, source, expert))


def drive_episode(spec: ScenarioSpec, seed: int, planner, config: ClosedLoopConfig) -> Episode:
    """Run one episode with ``planner`` (a policy, or :class:`SelfDriving`) in charge after
    the warm-up; each decision records the planner's meta-action, the expert's choice from
    the same state and whether they agree."""
    self_driving = isinstance(planner, SelfDriving)
    decisions = []
    with DrivingEnv(config.env_config()) as env:
        obs = env.reset(spec, seed, self_driving=self_driving)
        while not env.status.done:
            if self_driving:
                env.step()
                continue
            out, choice, trajectory = _decide(env, obs, planner, config)
            next_obs, _ = env.step(trajectory)
            decisions.append(_decision(obs, out, choice.meta_action, env.plan, config))
            obs = next_obs
        status = env.status
        return Episode(spec, seed, planner.name, env.log(), env.warmup_steps, status.step,
                       status.collision, status.off_road, decisions)
