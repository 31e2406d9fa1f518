"""Closed-loop evaluation: a planner drives the ego in highway-env, and the simulator scores it.

An episode: the scenario is set up exactly as the data recipe does (same event, same seed);
the simulator's own driver drives the warm-up (so that the planner has a history); then every
``decision_every_s`` the planner gets what the model sees in the data set — the cameras
rendered from the live state, the ego history and the navigation command — and returns a
trajectory, which a tracker (:mod:`vla.sim.tracker`) follows at the simulation rate until the
next decision. The other vehicles react to the ego as in any highway-env run. The episode
ends at its duration, at a collision, or after 0.5 s off the lanes.

Planners: ``model`` (a vla model through transformers or a vLLM endpoint; an unparsable
output keeps the previous plan and counts against the parse rate), ``expert`` (the simulator's
driver, IDM + MOBIL, never handed to the tracker) and ``constant-velocity`` (straight on at the
current speed, through the same tracker). Metrics per episode
(:mod:`vla.evaluation.driving_metrics`): collision, off-road, progress against the expert on
the same seed, TTC violations, comfort,
the PDMS-like score, and how often the written decision matched what the car then did (the
meta-action deriver on the driven path over the next 4 s, against the written one).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vla.data.frames import to_ego
from vla.data.samples import EpisodeRenderer, SampleConfig, observation
from vla.evaluation import driving_metrics as dm
from vla.evaluation.scenarios import ScenarioSet
from vla.meta_action import derive_meta_action, is_consistent
from vla.sim.driver import TrackedVehicle
from vla.sim.episode import OFFROAD_GRACE_STEPS, EpisodeRecorder, seed_everything
from vla.sim.recipes import ScenarioSpec
from vla.sim.tracker import PurePursuitTracker, TrackerConfig, plan_from_ego_frame
from vla.sim.world import DT, setup_scenario
from vla.trajectory.baselines import constant_velocity
from vla.trajectory.types import ego_state_of

PLANNERS = ("model", "expert", "constant-velocity")
MATCH_WINDOW_S = 4.0  # the deriver's lateral window; its longitudinal one is 3 s


@dataclass
class PlannerOutput:
    trajectory: np.ndarray | None  # (T, 3) ego frame; None when the output did not parse
    text: str | None = None
    decision: object | None = None  # vla.model.parser.Decision
    error: object | None = None  # vla.model.parser.ParseError
    seconds: float = 0.0


class ExpertPlanner:
    """The simulator's driver (IDM + MOBIL): the ego is never handed to the tracker."""

    name = "expert"
    drives_itself = True

    def plan(self, sample: dict) -> PlannerOutput:  # pragma: no cover - never asked
        raise RuntimeError("the expert drives itself")


class ConstantVelocityPlanner:
    name = "constant-velocity"
    drives_itself = False

    def plan(self, sample: dict) -> PlannerOutput:
        return PlannerOutput(constant_velocity(ego_state_of(sample)))


class ModelPlanner:
    """A vla model: ``generate(sample)`` returns (text, Decision or None, ParseError or None)."""

    name = "model"
    drives_itself = False

    def __init__(self, generate: Callable[[dict], tuple]):
        self.generate = generate

    def plan(self, sample: dict) -> PlannerOutput:
        start = time.perf_counter()
        text, decision, error = self.generate(sample)
        seconds = time.perf_counter() - start
        trajectory = None if decision is None else decision.trajectory
        return PlannerOutput(trajectory, text, decision, error, seconds)


def endpoint_generator(client) -> Callable[[dict], tuple]:
    def generate(sample):
        c = client.decide_sync(sample, n=1, temperature=0.0).completions[0]  # greedy: no seed
        return c.text, c.decision, c.error
    return generate


def transformers_generator(loaded) -> Callable[[dict], tuple]:
    from vla.model.generate import generate_decision

    def generate(sample):
        g = generate_decision(loaded, sample)
        return g.text, g.decision, g.error
    return generate


@dataclass(frozen=True)
class ClosedLoopConfig:
    scenarios: ScenarioSet
    sample: SampleConfig = field(default_factory=SampleConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    trajectory_hz: float = 10.0
    save_frames: bool = True  # each decision's current camera images, for the trace report
    gif: bool = False  # a top-down GIF of each episode

    def __post_init__(self) -> None:
        if self.scenarios.warmup_s < self.sample.history_s:
            raise ValueError(f"warmup_s ({self.scenarios.warmup_s}) must cover the model's "
                             f"history ({self.sample.history_s} s)")


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
    decisions: list[dict]

    def ego_states(self) -> np.ndarray:
        return self.log.state[self.log.ego_id, self.start_step:self.end_step + 1]


def _steps(seconds: float) -> int:
    return int(round(seconds / DT))


def _model_sample(obs: dict, sample_id: str, scenario: str, pose: np.ndarray) -> dict:
    """The planner's input: the observation with decoded images; ``pose_world`` (x, y, yaw)
    is not part of the model's prompt (planners that replay a log need it)."""
    images = [Image.open(io.BytesIO(p["bytes"])).convert("RGB") for p in obs["images"]]
    return {**obs, "images": images, "sample_id": sample_id, "scenario": scenario,
            "pose_world": [float(v) for v in pose]}


def drive_episode(spec: ScenarioSpec, seed: int, planner, config: ClosedLoopConfig) -> Episode:
    """Run one episode with ``planner`` in charge after the warm-up."""
    seed_everything(seed)
    env, ego, event = setup_scenario(spec, seed)
    ego.__class__ = TrackedVehicle
    road = env.road
    road.record_history = False
    steps = _steps(spec.duration_s)
    warm, every = _steps(config.scenarios.warmup_s), _steps(config.scenarios.decision_every_s)
    recorder = EpisodeRecorder(spec, seed, road, ego, steps)
    recorder.snapshot(0)
    tracker = PurePursuitTracker(config.tracker, wheelbase_m=float(ego.LENGTH))
    renderer, plan, decisions = None, None, []
    collision = off_road = False
    off_run, end = 0, steps
    episode_id = f"{spec.event}-{seed}"
    for k in range(1, steps + 1):
        j = k - 1  # the state the planner sees; controls apply from j to k
        if not planner.drives_itself and j >= warm:
            log = None
            if (j - warm) % every == 0:
                log = recorder.log(j)
                if renderer is None:
                    renderer = EpisodeRenderer(log, config.sample)
                renderer.log = log
                obs = observation(log, renderer, j, config.sample)
                pose = log.state[log.ego_id, j, :3]
                sample = _model_sample(obs, f"{episode_id}@{j * DT:.1f}", spec.event, pose)
                out = planner.plan(sample)
                trajectory = out.trajectory
                if trajectory is None and plan is None:  # nothing to follow yet: straight on
                    trajectory = constant_velocity(ego_state_of(sample))
                if trajectory is not None:
                    plan = plan_from_ego_frame(trajectory, pose, config.trajectory_hz, j * DT)
                decisions.append({"step": j, "pose": pose.copy(), "speed": float(obs["ego_speed"]),
                                  "output": out, "plan_xy": plan.xy.copy(),
                                  "images": obs["images"][-len(config.sample.cameras):]})
            x, y = ego.position
            ego.controls = tracker.controls(plan, float(x), -float(y), -float(ego.heading),
                                            float(ego.speed), j * DT, DT)
        event(k * DT)
        road.act()
        road.step(DT)
        recorder.snapshot(k)
        if ego.crashed:
            collision, end = True, k
            break
        x, y = ego.position
        off_run = off_run + 1 if dm.off_lanes((x, -y), recorder.lanes) else 0
        if off_run > OFFROAD_GRACE_STEPS:
            off_road, end = True, k
            break
    env.close()
    return Episode(spec, seed, planner.name, recorder.log(end), warm, end, collision, off_road,
                   decisions)


def decision_matches(episode: Episode, hz: float = 10.0) -> list[bool | None]:
    """Per decision: did the written meta-action match the driven path over the next 4 s?

    None where the output did not parse, carried no written decision (baselines) or the
    episode ended before the window did.
    """
    log, out = episode.log, []
    window = _steps(MATCH_WINDOW_S)
    for d in episode.decisions:
        decision = d["output"].decision
        j = d["step"]
        if decision is None or j + window > episode.end_step:
            out.append(None)
            continue
        driven = to_ego(log.state[log.ego_id, j + 1:j + window + 1, :3], d["pose"])
        executed = derive_meta_action(driven, d["speed"], hz)
        d["executed_meta_action"] = {"longitudinal": executed.longitudinal,
                                     "lateral": executed.lateral}
        d["matched"] = all(is_consistent(decision.meta_action, executed))
        out.append(d["matched"])
    return out


def episode_metrics(episode: Episode, expert_xy: np.ndarray) -> dict:
    log = episode.log
    ego = episode.ego_states()
    others = [a for a in log.ids if a != log.ego_id]
    agents = log.state[others, episode.start_step:episode.end_step + 1]
    ttc = dm.time_to_collision(ego, log.size[log.ego_id], agents, log.size[others])
    violations = int((ttc < dm.TTC_THRESHOLD_S).sum())
    comfort = dm.comfort(ego, DT)
    ep = dm.progress(ego[:, :2], expert_xy)
    matches = [m for m in decision_matches(episode) if m is not None]
    outputs = [d["output"] for d in episode.decisions]
    parsed = [o.decision is not None for o in outputs if o.text is not None]
    return {
        "collision": int(episode.collision), "off_road": int(episode.off_road),
        "progress": round(ep, 4), "ttc_violations": violations,
        "min_ttc_s": None if not np.isfinite(ttc.min()) else round(float(ttc.min()), 3),
        "comfort": int(comfort["comfortable"]), "comfort_peaks": comfort,
        "pdms": round(dm.pdms(not episode.collision, not episode.off_road, violations == 0, ep,
                              comfort["comfortable"]), 4),
        "decision_match_rate": round(float(np.mean(matches)), 4) if matches else None,
        "decisions": len(episode.decisions),
        "parse_rate": round(float(np.mean(parsed)), 4) if parsed else None,
        "seconds_simulated": round((episode.end_step - episode.start_step) * DT, 1),
    }


def write_episode_traces(episode: Episode, metrics: dict, trace_path: Path,
                         save_frames: bool, gif: bool, config: ClosedLoopConfig) -> None:
    """Append one ``closed_loop`` record per decision and one ``closed_loop_episode`` record.

    Camera images (the current frame of each decision) go to ``frames/<episode>/`` beside
    the trace file and are referenced by relative path.
    """
    from vla.traces import append_trace, decision_fields

    trace_path = Path(trace_path)
    episode_id = f"{episode.planner}-{episode.spec.event}-{episode.seed}"
    frame_dir = trace_path.parent / "frames" / episode_id
    for d in episode.decisions:
        out: PlannerOutput = d["output"]
        t = round(d["step"] * DT, 2)
        sample = {"ego_speed": d["speed"], "future": None}
        if out.text is not None:
            fields = decision_fields(out.text, out.decision, out.error, sample)
        else:  # a baseline: a trajectory, no text
            derived = derive_meta_action(out.trajectory, d["speed"], config.trajectory_hz)
            fields = {"raw_output": None, "parsed": None, "error": None, "decision": None,
                      "derived_meta_action": {"longitudinal": derived.longitudinal,
                                              "lateral": derived.lateral}, "ade_m": None}
        images = []
        if save_frames:
            frame_dir.mkdir(parents=True, exist_ok=True)
            for name, part in zip(config.sample.cameras, d["images"], strict=True):
                path = frame_dir / f"{d['step']:04d}_{name}.png"
                path.write_bytes(part["bytes"])
                images.append(str(path.relative_to(trace_path.parent)))
        append_trace(trace_path, {
            "kind": "closed_loop", "episode": episode_id, "planner": episode.planner,
            "scenario": episode.spec.event, "seed": episode.seed, "step": d["step"], "t": t,
            "sample_id": f"{episode_id}@{t:.1f}", **fields,
            "executed_meta_action": d.get("executed_meta_action"),
            "decision_matched": d.get("matched"),
            "images": images, "ego_speed": round(d["speed"], 3),
            "trajectory_world": np.round(d["plan_xy"], 2).tolist(),
            "seconds": round(out.seconds, 3)})
    gif_path = None
    if gif:
        gif_path = str(write_gif(episode, trace_path.parent / "gifs" / f"{episode_id}.gif",
                                 config).relative_to(trace_path.parent))
    append_trace(trace_path, {"kind": "closed_loop_episode", "episode": episode_id,
                              "planner": episode.planner, "scenario": episode.spec.event,
                              "seed": episode.seed, "metrics": metrics, "gif": gif_path})


def write_gif(episode: Episode, path: Path, config: ClosedLoopConfig, every: int = 2) -> Path:
    """A top-down GIF of the episode (ego-centred), the current plan drawn in orange."""
    renderer = EpisodeRenderer(episode.log, config.sample)
    plans = {d["step"]: d["plan_xy"] for d in episode.decisions}
    frames, current = [], None
    for k in range(0, episode.end_step + 1):
        current = plans.get(k, current)
        if k % every:
            continue
        trajs = []
        if current is not None:
            pose = episode.log.state[episode.log.ego_id, k, :3]
            trajs = [(to_ego(current, pose), (255, 140, 0))]
        frames.append(Image.fromarray(renderer.topdown(k, trajectories=trajs)))
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(every * DT * 1000),
                   loop=0)
    return path


def evaluate_closed_loop(planners: list, config: ClosedLoopConfig, episodes: int, seed: int,
                         trace_path: str | Path | None = None, progress: bool = True,
                         on_episode: Callable[[str, dict], None] | None = None) -> dict:
    """Drive every episode with every planner; metrics per episode and per planner.

    The expert's path on each seed is the progress reference, so the expert always runs
    (its row appears in the result whether asked for or not).
    """
    from tqdm import tqdm

    runs = config.scenarios.episodes(episodes, seed)
    expert = ExpertPlanner()
    others = [p for p in planners if p.name != "expert"]
    per_episode: dict[str, list[dict]] = {"expert": [], **{p.name: [] for p in others}}
    bar = tqdm(total=len(runs) * (1 + len(others)), desc="closed loop", unit="episode",
               disable=not progress, leave=False)
    for spec, s in runs:
        reference = drive_episode(spec, s, expert, config)
        expert_xy = reference.ego_states()[:, :2]
        for planner, episode in [(expert, reference)] + [
                (p, None) for p in others]:
            if episode is None:
                episode = drive_episode(spec, s, planner, config)
            metrics = episode_metrics(episode, expert_xy)
            row = {"scenario": spec.event, "seed": s, **metrics}
            per_episode[planner.name].append(row)
            if trace_path is not None:
                write_episode_traces(episode, metrics, Path(trace_path), config.save_frames,
                                     config.gif, config)
            if on_episode is not None:
                on_episode(planner.name, row)
            bar.update()
    bar.close()
    return {"scenario_set": config.scenarios.name, "episodes": len(runs), "seed": seed,
            "planners": {name: summarize(rows) for name, rows in per_episode.items()},
            "per_episode": per_episode}


def summarize(rows: list[dict]) -> dict:
    def mean(key):
        values = [r[key] for r in rows if r.get(key) is not None]
        return round(float(np.mean(values)), 4) if values else None

    return {"episodes": len(rows), "collision_rate": mean("collision"),
            "off_road_rate": mean("off_road"), "progress": mean("progress"),
            "ttc_violation_rate": round(float(np.mean([r["ttc_violations"] > 0 for r in rows])),
                                        4) if rows else None,
            "comfort_rate": mean("comfort"), "pdms": mean("pdms"),
            "decision_match_rate": mean("decision_match_rate"), "parse_rate": mean("parse_rate")}


def dumps(result: dict) -> str:
    return json.dumps(result)
