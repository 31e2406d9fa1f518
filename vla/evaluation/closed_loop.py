"""Closed-loop evaluation: a planner drives the ego in highway-env, and the simulator scores it.

An episode: the scenario is set up exactly as the data recipe does (same event, same seed);
the simulator's own driver drives the warm-up (so that the planner has a history); then every
``decision_every_s`` the planner gets what the model sees in the data set — the cameras
rendered from the live state, the ego history and the navigation command — and returns a
trajectory, which a tracker (:mod:`vla.sim.tracker`) follows at the simulation rate until the
next decision. The other vehicles react to the ego as in any highway-env run. The episode
ends at its duration, at a collision, or after 0.5 s off the lanes.

Planners:

- ``model``: a vla model through transformers or a vLLM endpoint; an unparsable output keeps
  the previous plan and counts against the parse rate;
- ``expert``: the simulator's driver (IDM + MOBIL) drives itself, never through the tracker;
  its path on each seed is the progress reference, so it always runs;
- ``expert-tracked``: at each decision, the expert's own future from the current state — the
  driver run ahead for the trajectory horizon on a copy of the live road (see "the expert's
  choice" below) — sent through the same tracker as every other plan. Its gap to ``expert``
  is the cost of tracking and of re-planning every ``decision_every_s``; its gap to the
  model is planning error. The copy, not the trajectory logged on the same seed, because
  once a planner has driven, the ego is no longer where the logged expert was: a logged
  future re-expressed in the current ego frame would start from the wrong place and ignore
  the traffic around the ego now;
- ``damped-prior``: :func:`vla.trajectory.baselines.damped_acceleration`, the trajectory the
  default codec decodes with every token at entry 0 (what a model that ignores its inputs
  writes), through the tracker;
- ``constant-velocity``: straight on at the current speed, through the tracker.

The expert's choice (decision accuracy). At each decision the simulator's driver is asked
what it would do from the current state, without that being applied: the live road — every
vehicle, the scripted event still to come — is deep-copied, the copied ego is handed back to
the driver (its target lane reset to the lane it is in, its route resumed from the road it
is on: :func:`_hand_back`; at the first decision it never left the driver), and the copy is
run for the trajectory horizon (6 s). The data set's labeller
(:func:`vla.data.labels.make_label`) reads that run exactly as it reads a logged episode:
longitudinal from the accelerations the driver commanded over the next 3 s (``follow`` /
``yield`` from its leader and the junction rule), lateral from the lane sequence it chose.
So the reference is the label the model was trained on, for the state the planner drove
into; like the data set's labels, it knows the scripted event that is still to come. A
planner's decision is its written meta-action (a model's parsed output) or, for planners
without text, the meta-action the deriver (:func:`vla.meta_action.derive_meta_action`) reads
from its plan. Accuracy: a written longitudinal class must equal the expert's (as in
open-loop ``accuracy_lon``); a derived one, a kinematic class, must be one the expert's
class allows (:data:`vla.meta_action.KINEMATIC_OF`: ``follow`` allows ``keep_speed``,
``yield`` allows ``decelerate`` or ``stop``); lateral classes must be equal. The copy runs
with the global random states saved and restored, so asking changes nothing in the episode.

Metrics per episode (:mod:`vla.evaluation.driving_metrics`): collision, off-road, progress
against the expert on the same seed, TTC violations, comfort, the PDMS-like score
``pdms_like`` (NAVSIM's formula on these inputs; the module docstring there lists what
differs from NAVSIM's PDMS; ``pdms`` holds the same number for older readers), decision
accuracy (longitudinal, lateral) and the parse rate. Per planner, overall and per
event: the means, and for collision rate, off-road rate, PDMS-like score and decision
accuracy a 95 % percentile-bootstrap interval over episodes (1000 resamples, seeded by the
evaluation seed): ``<key>_ci95 = [lo, hi]``. When ``damped-prior`` ran, every other
planner also gets its paired difference to it (same seeds): ``vs_damped_prior``.

Parallel episodes: ``workers`` > 1 drives episodes in that many spawned processes. Every
episode seeds the simulator itself, so results do not depend on the worker count or order;
trace records and ``on_episode`` calls come in the same order as with one worker. A planner
goes to the workers when it can be pickled and run there (``runs_in_workers``): the
built-in ones and a model behind an HTTP endpoint. A model loaded in this process
(transformers) drives its episodes here, while the workers drive the rest.
"""

from __future__ import annotations

import copy
import io
import json
import random
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vla.data.frames import to_ego
from vla.data.labels import make_label
from vla.data.samples import EpisodeRenderer, SampleConfig, observation
from vla.evaluation import driving_metrics as dm
from vla.evaluation.scenarios import ScenarioSet
from vla.meta_action import KINEMATIC_OF, MetaAction, derive_meta_action
from vla.sim.driver import TrackedVehicle
from vla.sim.episode import OFFROAD_GRACE_STEPS, EpisodeRecorder, seed_everything
from vla.sim.recipes import ScenarioSpec
from vla.sim.tracker import PurePursuitTracker, TrackerConfig, plan_from_ego_frame
from vla.sim.world import DT, SIM_HZ, setup_scenario
from vla.trajectory.baselines import constant_velocity, damped_acceleration
from vla.trajectory.types import ego_state_of

PLANNERS = ("model", "expert", "expert-tracked", "damped-prior", "constant-velocity")
BASELINES = ("expert-tracked", "damped-prior", "constant-velocity")  # through the tracker
PAIRED_REFERENCE = "damped-prior"
CI_RESAMPLES = 1000
CI_CONFIDENCE = 0.95
CI_KEYS = {"collision_rate": "collision", "off_road_rate": "off_road", "pdms_like": "pdms_like",
           "decision_accuracy_lon": "decision_accuracy_lon",
           "decision_accuracy_lat": "decision_accuracy_lat"}


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
    runs_in_workers = True

    def plan(self, sample: dict) -> PlannerOutput:  # pragma: no cover - never asked
        raise RuntimeError("the expert drives itself")


class _KinematicPlanner:
    """A plan from the ego state alone (:mod:`vla.trajectory.baselines`), through the tracker."""

    drives_itself = False
    runs_in_workers = True
    baseline = staticmethod(constant_velocity)

    def plan(self, sample: dict) -> PlannerOutput:
        return PlannerOutput(self.baseline(ego_state_of(sample)))


class ConstantVelocityPlanner(_KinematicPlanner):
    name = "constant-velocity"


class DampedPriorPlanner(_KinematicPlanner):
    """The damped-acceleration baseline as a plan: the trajectory prior of the default codec
    (every trajectory token at entry 0), i.e. what a model that ignores its inputs drives."""

    name = "damped-prior"
    baseline = staticmethod(damped_acceleration)


class ExpertTrackedPlanner:
    """The expert's own future from the current state (the driver run ahead on a copy of
    the road), followed by the tracker like any other plan."""

    name = "expert-tracked"
    drives_itself = False
    runs_in_workers = True
    uses_expert_future = True  # drive_episode puts it in the sample as ``expert_future``

    def plan(self, sample: dict) -> PlannerOutput:
        return PlannerOutput(np.asarray(sample["expert_future"], float))


BASELINE_PLANNERS = {"expert": ExpertPlanner, "expert-tracked": ExpertTrackedPlanner,
                     "damped-prior": DampedPriorPlanner,
                     "constant-velocity": ConstantVelocityPlanner}


def make_planner(name: str):
    """A built-in planner by name (``expert``, ``expert-tracked``, ``damped-prior``,
    ``constant-velocity``)."""
    try:
        return BASELINE_PLANNERS[name]()
    except KeyError:
        raise ValueError(f"unknown planner {name!r}; built-in planners: "
                         f"{sorted(BASELINE_PLANNERS)}") from None


class ModelPlanner:
    """A vla model: ``generate(sample)`` returns (text, Decision or None, ParseError or None).

    It runs in worker processes when its generator does (:class:`EndpointGenerator`), and in
    this process otherwise (a transformers model is not copied into workers)."""

    name = "model"
    drives_itself = False

    def __init__(self, generate: Callable[[dict], tuple]):
        self.generate = generate

    @property
    def runs_in_workers(self) -> bool:
        return bool(getattr(self.generate, "runs_in_workers", False))

    def plan(self, sample: dict) -> PlannerOutput:
        start = time.perf_counter()
        text, decision, error = self.generate(sample)
        seconds = time.perf_counter() - start
        trajectory = None if decision is None else decision.trajectory
        return PlannerOutput(trajectory, text, decision, error, seconds)


class EndpointGenerator:
    """Greedy decisions from a vLLM endpoint; picklable, so it can run in worker processes
    (each request opens its own HTTP connection)."""

    runs_in_workers = True

    def __init__(self, client):
        self.client = client

    def __call__(self, sample: dict) -> tuple:
        c = self.client.decide_sync(sample, n=1, temperature=0.0).completions[0]  # no seed
        return c.text, c.decision, c.error

    def __getstate__(self) -> dict:
        client = copy.copy(self.client)
        if hasattr(client, "_semaphore"):  # bound to the event loop that made it
            client._semaphore = None
        return {"client": client}


def endpoint_generator(client) -> EndpointGenerator:
    return EndpointGenerator(client)


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
        ratio = SIM_HZ / self.trajectory_hz
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ValueError(f"trajectory_hz ({self.trajectory_hz}) must divide the "
                             f"simulation rate ({SIM_HZ} Hz)")


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


@dataclass(frozen=True)
class ExpertChoice:
    """What the simulator's driver would do from a state: its label (the data set's rules)
    and its driven future, (H, 3) in the ego frame at that state, at the simulation rate."""

    meta_action: MetaAction
    trajectory: np.ndarray


def _steps(seconds: float) -> int:
    return int(round(seconds / DT))


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


def _hand_back(vehicle) -> None:
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


def expert_choice(spec: ScenarioSpec, seed: int, road, ego, event, step: int,
                  horizon_steps: int, recorder: EpisodeRecorder | None = None) -> ExpertChoice:
    """Run the simulator's driver ahead from the live state on a copy of ``road``.

    ``step`` is the current step (the next event call is at ``step + 1``); ``recorder``, the
    live episode's, lends its lane geometry. Nothing of the live road, its vehicles or the
    global random states is changed.
    """
    states = random.getstate(), np.random.get_state()
    records, ego.records = ego.records, []
    memo: dict = {id(road.network): road.network}
    for tos in road.network.graph.values():  # the lanes are static: share them
        for lanes in tos.values():
            for lane in lanes:
                memo[id(lane)] = lane
    try:
        twin_road = copy.deepcopy(road, memo)
        twin_event = _copy_callable(event, memo)
    finally:
        ego.records = records
    twin = memo[id(ego)]
    if getattr(twin, "controls", None) is not None:  # a planner was driving: back to the driver
        twin.controls = None
        _hand_back(twin)
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


def _at_rate(trajectory: np.ndarray, hz: float) -> np.ndarray:
    """A trajectory at the simulation rate, sampled at ``hz`` (from t = 1 / hz)."""
    every = int(round(SIM_HZ / hz))
    return trajectory[every - 1::every]


def planner_meta_action(out: PlannerOutput, speed: float,
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


def _model_sample(obs: dict, sample_id: str, scenario: str, pose: np.ndarray) -> dict:
    """The planner's input: the observation with decoded images; ``pose_world`` (x, y, yaw)
    is not part of the model's prompt (planners that replay a log need it)."""
    images = [Image.open(io.BytesIO(p["bytes"])).convert("RGB") for p in obs["images"]]
    return {**obs, "images": images, "sample_id": sample_id, "scenario": scenario,
            "pose_world": [float(v) for v in pose]}


def drive_episode(spec: ScenarioSpec, seed: int, planner, config: ClosedLoopConfig) -> Episode:
    """Run one episode with ``planner`` in charge after the warm-up.

    At each decision the expert's choice from the current state is asked too (see the module
    docstring); each decision records the planner's meta-action, the expert's and whether
    they agree.
    """
    seed_everything(seed)
    env, ego, event = setup_scenario(spec, seed)
    ego.__class__ = TrackedVehicle
    road = env.road
    road.record_history = False
    steps = _steps(spec.duration_s)
    warm, every = _steps(config.scenarios.warmup_s), _steps(config.scenarios.decision_every_s)
    horizon = config.sample.steps(config.sample.horizon_s)
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
                choice = expert_choice(spec, seed, road, ego, event, j, horizon, recorder)
                if getattr(planner, "uses_expert_future", False):
                    sample["expert_future"] = _at_rate(choice.trajectory, config.trajectory_hz)
                out = planner.plan(sample)
                trajectory = out.trajectory
                if trajectory is None and plan is None:  # nothing to follow yet: straight on
                    trajectory = constant_velocity(ego_state_of(sample))
                if trajectory is not None:
                    plan = plan_from_ego_frame(trajectory, pose, config.trajectory_hz, j * DT)
                speed = float(obs["ego_speed"])
                meta, source = planner_meta_action(out, speed, config.trajectory_hz)
                decisions.append({
                    "step": j, "pose": pose.copy(), "speed": speed, "output": out,
                    "plan_xy": plan.xy.copy(),
                    "images": obs["images"][-len(config.sample.cameras):],
                    "meta_action": meta, "meta_action_source": source,
                    "expert_meta_action": choice.meta_action,
                    "correct": None if meta is None else decision_correct(
                        meta, source, choice.meta_action)})
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


def _rate(values: list) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def driven_metrics(episode: Episode) -> dict:
    """The metrics that need only the episode itself (all but progress and the score)."""
    log = episode.log
    ego = episode.ego_states()
    others = [a for a in log.ids if a != log.ego_id]
    agents = log.state[others, episode.start_step:episode.end_step + 1]
    ttc = dm.time_to_collision(ego, log.size[log.ego_id], agents, log.size[others])
    violations = int((ttc < dm.TTC_THRESHOLD_S).sum())
    comfort = dm.comfort(ego, DT)
    outputs = [d["output"] for d in episode.decisions]
    parsed = [o.decision is not None for o in outputs if o.text is not None]
    correct = [d["correct"] for d in episode.decisions if d.get("correct") is not None]
    return {
        "collision": int(episode.collision), "off_road": int(episode.off_road),
        "ttc_violations": violations,
        "min_ttc_s": None if not np.isfinite(ttc.min()) else round(float(ttc.min()), 3),
        "comfort": int(comfort["comfortable"]), "comfort_peaks": comfort,
        "decision_accuracy_lon": _rate([c[0] for c in correct]),
        "decision_accuracy_lat": _rate([c[1] for c in correct]),
        "decisions": len(episode.decisions),
        "parse_rate": _rate(parsed),
        "seconds_simulated": round((episode.end_step - episode.start_step) * DT, 1),
    }


def with_progress(metrics: dict, ego_xy: np.ndarray, expert_xy: np.ndarray) -> dict:
    """``metrics`` (from :func:`driven_metrics`) with progress against the expert's path and
    the PDMS-like score (also under ``pdms``, the same number, for older readers)."""
    ep = dm.progress(ego_xy, expert_xy)
    score = round(dm.pdms_like(not metrics["collision"], not metrics["off_road"],
                               metrics["ttc_violations"] == 0, ep, bool(metrics["comfort"])), 4)
    return {**metrics, "progress": round(ep, 4), "pdms_like": score, "pdms": score}


def episode_metrics(episode: Episode, expert_xy: np.ndarray) -> dict:
    return with_progress(driven_metrics(episode), episode.ego_states()[:, :2], expert_xy)


def _meta_json(meta: MetaAction | None) -> dict | None:
    return None if meta is None else {"longitudinal": meta.longitudinal,
                                      "lateral": meta.lateral}


def episode_trace_records(episode: Episode, trace_dir: Path, config: ClosedLoopConfig,
                          ) -> tuple[list[dict], str | None]:
    """One ``closed_loop`` record per decision, and the GIF's path (or None).

    Camera images (the current frame of each decision) go to ``frames/<episode>/`` in
    ``trace_dir``, the GIF to ``gifs/``; both are referenced by path relative to it.
    """
    from vla.traces import decision_fields

    trace_dir = Path(trace_dir)
    episode_id = f"{episode.planner}-{episode.spec.event}-{episode.seed}"
    frame_dir = trace_dir / "frames" / episode_id
    records = []
    for d in episode.decisions:
        out: PlannerOutput = d["output"]
        t = round(d["step"] * DT, 2)
        sample = {"ego_speed": d["speed"], "future": None}
        if out.text is not None:
            fields = decision_fields(out.text, out.decision, out.error, sample)
        else:  # a baseline: a trajectory, no text
            fields = {"raw_output": None, "parsed": None, "error": None, "decision": None,
                      "derived_meta_action": _meta_json(d["meta_action"]), "ade_m": None}
        images = []
        if config.save_frames:
            frame_dir.mkdir(parents=True, exist_ok=True)
            for name, part in zip(config.sample.cameras, d["images"], strict=True):
                path = frame_dir / f"{d['step']:04d}_{name}.png"
                path.write_bytes(part["bytes"])
                images.append(str(path.relative_to(trace_dir)))
        correct = d.get("correct")
        records.append({
            "kind": "closed_loop", "episode": episode_id, "planner": episode.planner,
            "scenario": episode.spec.event, "seed": episode.seed, "step": d["step"], "t": t,
            "sample_id": f"{episode_id}@{t:.1f}", **fields,
            "expert_meta_action": _meta_json(d.get("expert_meta_action")),
            "decision_correct_lon": None if correct is None else bool(correct[0]),
            "decision_correct_lat": None if correct is None else bool(correct[1]),
            "images": images, "ego_speed": round(d["speed"], 3),
            "trajectory_world": np.round(d["plan_xy"], 2).tolist(),
            "seconds": round(out.seconds, 3)})
    gif_path = None
    if config.gif:
        gif_path = str(write_gif(episode, trace_dir / "gifs" / f"{episode_id}.gif",
                                 config).relative_to(trace_dir))
    return records, gif_path


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


@dataclass
class _Job:
    index: int  # position in the canonical order: run by run, the expert first
    run: int
    spec: ScenarioSpec
    seed: int
    planner: object


@dataclass
class _Driven:
    index: int
    run: int
    planner: str
    event: str
    seed: int
    metrics: dict  # driven_metrics
    ego_xy: np.ndarray
    records: list[dict]
    gif: str | None
    seconds: float


def _drive_job(job: _Job, config: ClosedLoopConfig, trace_dir: str | None) -> _Driven:
    """Drive one (episode, planner); in a worker process or here."""
    start = time.perf_counter()
    episode = drive_episode(job.spec, job.seed, job.planner, config)
    records, gif = [], None
    if trace_dir is not None:
        records, gif = episode_trace_records(episode, Path(trace_dir), config)
    return _Driven(job.index, job.run, episode.planner, job.spec.event, job.seed,
                   driven_metrics(episode), episode.ego_states()[:, :2].copy(), records, gif,
                   time.perf_counter() - start)


def evaluate_closed_loop(planners: list, config: ClosedLoopConfig, episodes: int | None,
                         seed: int, trace_path: str | Path | None = None, progress: bool = True,
                         on_episode: Callable[[str, dict], None] | None = None,
                         workers: int = 1) -> dict:
    """Drive every episode with every planner; metrics per episode, per planner and event.

    ``episodes`` None: the whole scenario set (``ScenarioSet.size``). The expert's path on
    each seed is the progress reference, so the expert always runs (its row appears in the
    result whether asked for or not). ``workers`` > 1: episodes in that many processes
    (see the module docstring); the results are the same for any ``workers``.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    from tqdm import tqdm

    from vla.traces import append_trace

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    runs = config.scenarios.episodes(episodes, seed)
    expert = ExpertPlanner()
    others = [p for p in planners if p.name != "expert"]
    names = ["expert"] + [p.name for p in others]
    if len(set(names)) != len(names):
        raise ValueError(f"planner names repeat: {names}")
    jobs = [_Job(i * len(names) + n, i, spec, s, planner)
            for i, (spec, s) in enumerate(runs) for n, planner in enumerate([expert] + others)]
    trace_dir = None if trace_path is None else str(Path(trace_path).parent)
    remote = [j for j in jobs if workers > 1 and getattr(j.planner, "runs_in_workers", False)]
    local = [j for j in jobs if not (workers > 1 and getattr(j.planner, "runs_in_workers",
                                                             False))]
    per_episode: dict[str, list[dict]] = {name: [] for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    driven: dict[int, _Driven] = {}
    expert_xy: dict[int, np.ndarray] = {}
    next_index = 0
    bar = tqdm(total=len(jobs), desc="closed loop", unit="episode", disable=not progress,
               leave=False)

    def flush() -> None:  # finish what is ready, in the canonical order
        nonlocal next_index
        while next_index in driven:
            d = driven.pop(next_index)
            next_index += 1
            if d.planner == "expert":
                expert_xy[d.run] = d.ego_xy
            metrics = with_progress(d.metrics, d.ego_xy, expert_xy[d.run])
            row = {"scenario": d.event, "seed": d.seed, **metrics}
            per_episode[d.planner].append(row)
            seconds[d.planner].append(d.seconds)
            if trace_path is not None:
                for record in d.records:
                    append_trace(trace_path, record)
                append_trace(trace_path, {
                    "kind": "closed_loop_episode",
                    "episode": f"{d.planner}-{d.event}-{d.seed}", "planner": d.planner,
                    "scenario": d.event, "seed": d.seed, "metrics": metrics, "gif": d.gif})
            if on_episode is not None:
                on_episode(d.planner, row)

    pool = futures = None
    try:
        if remote:
            pool = ProcessPoolExecutor(max_workers=min(workers, len(remote)),
                                       mp_context=get_context("spawn"))
            futures = {pool.submit(_drive_job, j, config, trace_dir) for j in remote}

        def collect(block: bool) -> None:
            nonlocal futures
            if not futures:
                return
            done, futures = wait(futures, timeout=None if block else 0,
                                 return_when=FIRST_COMPLETED)
            for f in done:
                d = f.result()
                driven[d.index] = d
                bar.update()

        for job in local:
            d = _drive_job(job, config, trace_dir)
            driven[d.index] = d
            bar.update()
            collect(block=False)
            flush()
        while futures:
            collect(block=True)
            flush()
        flush()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return {"scenario_set": config.scenarios.name, "episodes": len(runs), "seed": seed,
            "workers": workers,
            "ci": {"method": "percentile bootstrap over episodes", "resamples": CI_RESAMPLES,
                   "confidence": CI_CONFIDENCE, "seed": seed},
            "planners": summarize_planners(per_episode, seed),
            "per_episode": per_episode,
            "seconds_per_episode": {name: round(float(np.mean(v)), 2) if v else None
                                    for name, v in seconds.items()}}


def _ci(values: list, seed: int) -> list[float] | None:
    interval = dm.bootstrap_ci(values, CI_RESAMPLES, CI_CONFIDENCE, seed)
    return None if interval is None else [round(v, 4) for v in interval]


def summarize(rows: list[dict], seed: int = 0) -> dict:
    """Means over episodes, and bootstrap intervals (``<key>_ci95``) for :data:`CI_KEYS`."""
    out = {"episodes": len(rows)}
    for key, column in CI_KEYS.items():
        values = [r.get(column) for r in rows]
        out[key], out[f"{key}_ci95"] = _rate(values), _ci(values, seed)
    out["pdms"] = out["pdms_like"]  # the same number, for older readers
    out["progress"] = _rate([r.get("progress") for r in rows])
    out["ttc_violation_rate"] = _rate([r["ttc_violations"] > 0 for r in rows])
    out["comfort_rate"] = _rate([r.get("comfort") for r in rows])
    out["parse_rate"] = _rate([r.get("parse_rate") for r in rows])
    return out


def paired_difference(rows: list[dict], reference: list[dict], seed: int = 0) -> dict:
    """Mean per-episode difference (planner minus reference, same episodes) of the
    PDMS-like score and the collision rate, with bootstrap intervals over episodes."""
    if [(r["scenario"], r["seed"]) for r in rows] != \
            [(r["scenario"], r["seed"]) for r in reference]:
        raise ValueError("paired rows must be of the same episodes, in the same order")
    out = {}
    for key, column in (("pdms_like_diff", "pdms_like"), ("collision_rate_diff", "collision")):
        diffs = [a[column] - b[column] for a, b in zip(rows, reference, strict=True)]
        out[key], out[f"{key}_ci95"] = _rate(diffs), _ci(diffs, seed)
    return out


def summarize_planners(per_episode: dict[str, list[dict]], seed: int = 0) -> dict:
    """Per planner: the overall summary, ``per_event`` (scenario event → summary) and, when
    the damped prior ran, ``vs_damped_prior`` (:func:`paired_difference`)."""
    out = {}
    reference = per_episode.get(PAIRED_REFERENCE)
    for name, rows in per_episode.items():
        events = list(dict.fromkeys(r["scenario"] for r in rows))
        summary = summarize(rows, seed)
        summary["per_event"] = {e: summarize([r for r in rows if r["scenario"] == e], seed)
                                for e in events}
        if reference is not None and name != PAIRED_REFERENCE and rows:
            summary["vs_damped_prior"] = paired_difference(rows, reference, seed)
        out[name] = summary
    return out


def dumps(result: dict) -> str:
    return json.dumps(result)
