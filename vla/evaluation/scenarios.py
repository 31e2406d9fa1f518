"""Closed-loop scenario sets: which scenarios, with which traffic and seeds, for how long.

A scenario set is a YAML file::

    name: demo
    duration_s: 12          # simulated time per episode, warm-up included
    warmup_s: 2.0           # the simulator's driver drives first, so the model has a history
    decision_every_s: 0.5   # the planner is asked every 0.5 s; the tracker runs at 10 Hz
    reaction_delay_s: 1.0   # optional: the simulator's driver's reaction delay (as in the data)
    episodes_per_scenario: 2  # optional: the set's full size is this times the entries
    scenarios:
      - event: lead_brake   # a scripted event of the data recipes (vla.sim.recipes.EVENTS)
        road: highway       # optional; must match the event's road
        traffic: 8          # other vehicles (highway roads)
        seeds: [3, 7]       # optional; otherwise drawn from --seed

``episodes(n, seed)`` lists the episodes: scenario entries in turn, each entry's own seeds
first, then seeds derived from ``seed``. The same file, n and seed give the same episodes.
With ``n`` left out it lists the whole set, ``size`` episodes: ``episodes_per_scenario`` of
each entry (without that key: as many as the entry with the most pinned seeds, at least
one). Since entries take turns, the first ``k * len(scenarios)`` episodes of any ``n``
hold ``k`` of each entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla.sim.recipes import ROAD_OF_EVENT, ScenarioSpec
from vla.sim.world import DT


@dataclass(frozen=True)
class ScenarioEntry:
    event: str
    traffic: int = 12
    seeds: tuple[int, ...] = ()
    road: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.event not in ROAD_OF_EVENT:
            raise ValueError(f"unknown event {self.event!r}; known: {sorted(ROAD_OF_EVENT)}")
        if self.road is not None and self.road != ROAD_OF_EVENT[self.event]:
            raise ValueError(f"event {self.event!r} happens on road "
                             f"{ROAD_OF_EVENT[self.event]!r}, not {self.road!r}")


@dataclass(frozen=True)
class ScenarioSet:
    name: str
    scenarios: tuple[ScenarioEntry, ...]
    duration_s: float = 12.0
    warmup_s: float = 2.0
    decision_every_s: float = 0.5
    reaction_delay_s: float = 0.0  # the simulator driver's (warm-up, expert); data recipes' too
    episodes_per_scenario: int | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.scenarios:
            raise ValueError(f"scenario set {self.name!r} lists no scenarios")
        if self.warmup_s < 2.0:
            raise ValueError(f"warmup_s must be >= 2.0 s (the model's history), "
                             f"got {self.warmup_s}")
        if not self.duration_s >= self.warmup_s + 2.0:
            raise ValueError("duration_s must leave at least 2 s after the warm-up")
        for name in ("warmup_s", "decision_every_s"):
            steps = getattr(self, name) / DT
            if abs(steps - round(steps)) > 1e-6 or round(steps) < 1:
                raise ValueError(f"{name} must be a positive multiple of {DT} s")
        if self.episodes_per_scenario is not None and self.episodes_per_scenario < 1:
            raise ValueError(f"episodes_per_scenario must be >= 1, got "
                             f"{self.episodes_per_scenario}")
        for entry in self.scenarios:  # ScenarioSpec validates duration and traffic
            ScenarioSpec(entry.event, duration_s=self.duration_s, traffic=entry.traffic,
                         reaction_delay_s=self.reaction_delay_s)

    @property
    def size(self) -> int:
        """Episodes in the whole set (``episodes(None, seed)``)."""
        per = self.episodes_per_scenario or max([1] + [len(e.seeds) for e in self.scenarios])
        return per * len(self.scenarios)

    def episodes(self, n: int | None, seed: int) -> list[tuple[ScenarioSpec, int]]:
        n = self.size if n is None else n
        if n < 1:
            raise ValueError(f"episodes must be >= 1, got {n}")
        rng = np.random.default_rng(seed)
        out = []
        for i in range(n):
            entry = self.scenarios[i % len(self.scenarios)]
            turn = i // len(self.scenarios)
            s = entry.seeds[turn] if turn < len(entry.seeds) else int(rng.integers(0, 2**31 - 1))
            if turn < len(entry.seeds):
                rng.integers(0, 2**31 - 1)  # keep later draws independent of pinned seeds
            out.append((ScenarioSpec(entry.event, duration_s=self.duration_s,
                                     traffic=entry.traffic,
                                     reaction_delay_s=self.reaction_delay_s), s))
        return out


def load_scenario_set(path: str | Path) -> ScenarioSet:
    """The scenario set ``path`` names: a YAML file, or a packaged set's name (``demo``,
    ``benchmark``, ``mixed``: ``eval/scenarios/*.yaml``)."""
    import yaml

    from vla.resources import named_or_file

    p = named_or_file("eval/scenarios", path, "scenario set")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or "scenarios" not in raw:
        raise ValueError(f"{p}: expected a mapping with a 'scenarios' list")
    known = {"name", "scenarios", "duration_s", "warmup_s", "decision_every_s", "description",
             "episodes_per_scenario", "reaction_delay_s"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{p}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    entries = []
    for i, item in enumerate(raw["scenarios"] or []):
        if not isinstance(item, dict):
            raise ValueError(f"{p}: scenarios[{i}] must be a mapping")
        try:
            entries.append(ScenarioEntry(**item))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{p}: scenarios[{i}]: {exc}") from exc
    try:
        per = raw.get("episodes_per_scenario")
        if per is not None and (isinstance(per, bool) or not isinstance(per, int)):
            raise ValueError(f"episodes_per_scenario must be an integer, got {per!r}")
        return ScenarioSet(name=str(raw.get("name", p.stem)), scenarios=tuple(entries),
                           **{k: float(raw[k]) for k in ("duration_s", "warmup_s",
                                                           "decision_every_s",
                                                           "reaction_delay_s") if k in raw},
                           episodes_per_scenario=per, source=str(p))
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from exc
