"""Closed-loop evaluation: planners drive the ego in highway-env, and the simulator scores them.

An episode (:mod:`vla.evaluation.closed_loop_episode`) runs in :class:`vla.sim.env.DrivingEnv`:
the scenario is set up exactly as the data recipe does (same event, same seed); the
simulator's own driver drives the warm-up (so that the planner has a history); then every
``decision_every_s`` the planner gets what the model sees in the data set — the cameras
rendered from the live state, the ego history and the navigation command — and returns a
trajectory, which a tracker (:mod:`vla.sim.tracker`) follows at the simulation rate until the
next decision. The other vehicles react to the ego as in any highway-env run. The episode
ends at its duration, at a collision, or after 0.5 s off the lanes. At each decision the
simulator's driver is also asked what it would do from the same state, on a copy of the road
(:mod:`vla.evaluation.expert_choice`): the reference of decision accuracy.

Planners (a :class:`vla.policy.Policy` each, asked for its greedy output, but the expert):

- ``model``: a vla model (:class:`vla.model.generate.TransformersPolicy` or
  :class:`vla.serving.client.EndpointPolicy`, through :func:`model_planner`); an unparsable
  output keeps the previous plan and counts against the parse rate;
- ``expert``: the simulator's driver (IDM + MOBIL) drives itself, never through the tracker
  (the environment's self-driving mode); its path on each seed is the progress reference, so
  it always runs;
- ``expert-tracked``: at each decision, the expert's own future from the current state — the
  driver run ahead for the trajectory horizon on a copy of the live road (the expert's
  choice) — sent through the same tracker as every other plan. Its gap to ``expert`` is the
  cost of tracking and of re-planning every ``decision_every_s``; its gap to the model is
  planning error. The copy, not the trajectory logged on the same seed, because once a
  planner has driven, the ego is no longer where the logged expert was: a logged future
  re-expressed in the current ego frame would start from the wrong place and ignore the
  traffic around the ego now;
- ``damped-prior``: :func:`vla.trajectory.baselines.damped_acceleration`, the trajectory the
  default codec decodes with every token at entry 0 (what a model that ignores its inputs
  writes), through the tracker;
- ``constant-velocity``: straight on at the current speed, through the tracker.

Metrics per episode and their summary per planner and event, with bootstrap intervals and
the paired difference to the damped prior: :mod:`vla.evaluation.closed_loop_metrics`. Trace
records, camera frames and GIFs: :mod:`vla.evaluation.closed_loop_traces`.

Parallel episodes: ``workers`` > 1 drives episodes in that many spawned processes. Every
episode seeds the simulator itself, so results do not depend on the worker count or order;
trace records and ``on_episode`` calls come in the same order as with one worker. A planner
goes to the workers when it can be pickled and says so (``runs_in_workers``): the built-in
ones and a model behind an HTTP endpoint. A model loaded in this process (transformers)
drives its episodes here, while the workers drive the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla.evaluation.closed_loop_episode import (
    ClosedLoopConfig,
    SelfDriving,
    drive_episode,
)
from vla.evaluation.closed_loop_metrics import (
    CI_CONFIDENCE,
    CI_RESAMPLES,
    driven_metrics,
    summarize_planners,
    with_progress,
)
from vla.evaluation.closed_loop_traces import episode_record, episode_trace_records
from vla.reference import TrajectoryPolicy, expert_plan, kinematic_policies
from vla.sim.recipes import ScenarioSpec
from vla.traces import ClosedLoopRecord, append_trace

EXPERT = "expert"
MODEL = "model"
# the reference planners that drive through the tracker
TRACKED_REFERENCE_PLANNERS = ("expert-tracked", "damped-prior", "constant-velocity")


def make_planner(name: str):
    """A built-in planner by name: ``expert`` (:class:`SelfDriving`), or the policies
    ``expert-tracked``, ``damped-prior``, ``constant-velocity``."""
    if name == EXPERT:
        return SelfDriving()
    if name == "expert-tracked":
        return TrajectoryPolicy(name, expert_plan)
    kinematic = kinematic_policies()
    if name in kinematic:
        return kinematic[name]
    raise ValueError(f"unknown planner {name!r}; built-in planners: "
                     f"{sorted((EXPERT, *TRACKED_REFERENCE_PLANNERS))}")


def runs_in_workers(planner) -> bool:
    """The planner pickles into a worker process and can run there (it says so)."""
    return bool(getattr(planner, "runs_in_workers", False))


class _Renamed:
    """A policy under another name; it runs in workers when the policy does."""

    def __init__(self, policy, name: str):
        self.policy, self.name = policy, name

    @property
    def runs_in_workers(self) -> bool:
        return runs_in_workers(self.policy)

    def decide(self, samples, n: int = 1, temperature: float = 0.0) -> list:
        return self.policy.decide(samples, n, temperature)


def model_planner(policy) -> _Renamed:
    """A model policy as the ``model`` planner: its rows and trace records are named
    ``model`` whatever the policy's own name (the model directory or served name)."""
    return _Renamed(policy, MODEL)


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
    records: list[ClosedLoopRecord]
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


def _jobs(planners: list, runs: list[tuple[ScenarioSpec, int]]) -> tuple[list[_Job], list[str]]:
    """Every (run, planner) in the canonical order, the expert first in each run; and the
    planner names in that order."""
    others = [p for p in planners if p.name != EXPERT]
    names = [EXPERT] + [p.name for p in others]
    if len(set(names)) != len(names):
        raise ValueError(f"planner names repeat: {names}")
    drivers = [SelfDriving()] + others
    jobs = [_Job(i * len(names) + n, i, spec, s, planner)
            for i, (spec, s) in enumerate(runs) for n, planner in enumerate(drivers)]
    return jobs, names


class _InOrder:
    """Finishes driven episodes in the canonical order, whatever order they arrive in: adds
    progress against the run's expert, appends the trace records, calls ``on_episode``."""

    def __init__(self, names: list[str], trace_path, on_episode):
        self.per_episode: dict[str, list[dict]] = {name: [] for name in names}
        self.seconds: dict[str, list[float]] = {name: [] for name in names}
        self.trace_path, self.on_episode = trace_path, on_episode
        self._ready: dict[int, _Driven] = {}
        self._expert_xy: dict[int, np.ndarray] = {}
        self._next = 0

    def add(self, d: _Driven) -> None:
        self._ready[d.index] = d
        while self._next in self._ready:
            self._finish(self._ready.pop(self._next))
            self._next += 1

    def _finish(self, d: _Driven) -> None:
        if d.planner == EXPERT:
            self._expert_xy[d.run] = d.ego_xy
        metrics = with_progress(d.metrics, d.ego_xy, self._expert_xy[d.run])
        row = {"scenario": d.event, "seed": d.seed, **metrics}
        self.per_episode[d.planner].append(row)
        self.seconds[d.planner].append(d.seconds)
        if self.trace_path is not None:
            for record in d.records:
                append_trace(self.trace_path, record)
            append_trace(self.trace_path,
                         episode_record(d.planner, d.event, d.seed, metrics, d.gif))
        if self.on_episode is not None:
            self.on_episode(d.planner, row)


def _collect(futures: set, done: Callable[[_Driven], None], block: bool) -> set:
    """Hand the finished futures' episodes to ``done``; the futures still running."""
    from concurrent.futures import FIRST_COMPLETED, wait

    if not futures:
        return futures
    finished, pending = wait(futures, timeout=None if block else 0,
                             return_when=FIRST_COMPLETED)
    for f in finished:
        done(f.result())
    return pending


def _drive_all(jobs: list[_Job], workers: int, config: ClosedLoopConfig,
               trace_dir: str | None, done: Callable[[_Driven], None]) -> None:
    """Drive every job: those whose planner runs in workers in ``workers`` spawned
    processes (when ``workers`` > 1), the others here meanwhile."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    parallel = workers > 1
    remote = [j for j in jobs if parallel and runs_in_workers(j.planner)]
    local = [j for j in jobs if not (parallel and runs_in_workers(j.planner))]
    pool, futures = None, set()
    try:
        if remote:
            pool = ProcessPoolExecutor(max_workers=min(workers, len(remote)),
                                       mp_context=get_context("spawn"))
            futures = {pool.submit(_drive_job, j, config, trace_dir) for j in remote}
        for job in local:
            done(_drive_job(job, config, trace_dir))
            futures = _collect(futures, done, block=False)
        while futures:
            futures = _collect(futures, done, block=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def evaluate_closed_loop(planners: list, config: ClosedLoopConfig, episodes: int | None,
                         seed: int, trace_path: str | Path | None = None, progress: bool = True,
                         on_episode: Callable[[str, dict], None] | None = None,
                         workers: int = 1) -> dict:
    """Drive every episode with every planner; metrics per episode, per planner and event.

    ``planners`` are policies (or :func:`make_planner` names' planners). ``episodes`` None:
    the whole scenario set (``ScenarioSet.size``). The expert's path on each seed is the
    progress reference, so the expert always runs (its row appears in the result whether
    asked for or not). ``workers`` > 1: episodes in that many processes (see the module
    docstring); the results are the same for any ``workers``.
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    runs = config.scenarios.episodes(episodes, seed)
    jobs, names = _jobs(planners, runs)
    trace_dir = None if trace_path is None else str(Path(trace_path).parent)
    in_order = _InOrder(names, trace_path, on_episode)
    bar = tqdm(total=len(jobs), desc="closed loop", unit="episode", disable=not progress,
               leave=False)

    def done(d: _Driven) -> None:
        bar.update()
        in_order.add(d)

    try:
        _drive_all(jobs, workers, config, trace_dir, done)
    finally:
        bar.close()
    return {"scenario_set": config.scenarios.name, "episodes": len(runs), "seed": seed,
            "workers": workers,
            "ci": {"method": "percentile bootstrap over episodes", "resamples": CI_RESAMPLES,
                   "confidence": CI_CONFIDENCE, "seed": seed},
            "planners": summarize_planners(in_order.per_episode, seed),
            "per_episode": in_order.per_episode,
            "seconds_per_episode": {name: round(float(np.mean(v)), 2) if v else None
                                    for name, v in in_order.seconds.items()}}
