"""Scenario recipes: which highway-env road, which scripted event, how often.

A recipe is a weighted mix of :class:`ScenarioSpec`. Scripted events make the rare
decisions common: a lead vehicle braking hard, a cut-in, a stalled vehicle, a slower
lead that invites an overtake, yielding at a merge / intersection / roundabout, and
free road (accelerating to, or cruising at, the target speed).
"""

from __future__ import annotations

from dataclasses import dataclass

ROADS = ("highway", "merge", "roundabout", "intersection")
EVENTS = ("free_accelerate", "free_cruise", "lead_brake", "cut_in", "stalled", "slower_lead",
          "merge_yield", "junction", "roundabout_yield")
ROAD_OF_EVENT = {
    "free_accelerate": "highway", "free_cruise": "highway", "lead_brake": "highway",
    "cut_in": "highway", "stalled": "highway", "slower_lead": "highway",
    "merge_yield": "merge", "junction": "intersection", "roundabout_yield": "roundabout",
}


@dataclass(frozen=True)
class ScenarioSpec:
    """One kind of episode: a road, a scripted event and the traffic around it."""

    event: str
    duration_s: float = 16.0  # simulated time, history and future horizon included
    traffic: int = 12  # other vehicles (highway); the junction roads use their own

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r}; known events: {EVENTS}")
        if not 10.0 <= self.duration_s <= 120.0:
            raise ValueError(f"duration_s must be in [10, 120], got {self.duration_s}")
        if not 0 <= self.traffic <= 60:
            raise ValueError(f"traffic must be in [0, 60], got {self.traffic}")

    @property
    def road(self) -> str:
        return ROAD_OF_EVENT[self.event]


def _mix(**weights: float) -> tuple[tuple[ScenarioSpec, float], ...]:
    return tuple((ScenarioSpec(event), w) for event, w in weights.items())


RECIPES: dict[str, tuple[tuple[ScenarioSpec, float], ...]] = {
    "highway": _mix(free_accelerate=1, free_cruise=1, lead_brake=2, cut_in=2, stalled=2,
                    slower_lead=2),
    "merge": _mix(merge_yield=1),
    "intersection": _mix(junction=1),
    "roundabout": _mix(roundabout_yield=1),
    "default": _mix(free_accelerate=1, free_cruise=0.6, lead_brake=1.5, cut_in=1.2, stalled=1.2,
                    slower_lead=1.5, merge_yield=1, junction=1.8, roundabout_yield=1),
}


def get_recipe(name: str) -> tuple[tuple[ScenarioSpec, float], ...]:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {sorted(RECIPES)}") from None


def episode_specs(recipe: str, episodes: int, seed: int) -> list[ScenarioSpec]:
    """The scenario of each episode, drawn deterministically from the recipe's weights."""
    import numpy as np

    mix = get_recipe(recipe)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    weights = np.array([w for _, w in mix], float)
    # stratified: the expected count of each scenario, remainder drawn by weight
    rng = np.random.default_rng(seed)
    counts = np.floor(weights / weights.sum() * episodes).astype(int)
    extra = rng.choice(len(mix), size=episodes - counts.sum(), p=weights / weights.sum())
    for i in extra:
        counts[i] += 1
    specs = [mix[i][0] for i, c in enumerate(counts) for _ in range(c)]
    order = rng.permutation(len(specs))
    return [specs[i] for i in order]
