"""Scenario recipes: which highway-env road, which scripted event, how often.

A recipe is a weighted mix of :class:`ScenarioSpec` and a camera rig, read from a YAML file:
the packaged ones are ``data_recipes/*.yaml`` (default, highway, merge, intersection,
roundabout). Scripted events make the rare decisions common: a lead vehicle braking hard, a
cut-in, a stalled vehicle, a slower lead that invites an overtake, yielding at a merge /
intersection / roundabout, and free road (accelerating to, or cruising at, the target speed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

EVENTS = ("free_accelerate", "free_cruise", "lead_brake", "cut_in", "stalled", "slower_lead",
          "merge_yield", "junction", "roundabout_yield")
# the events whose samples need the cameras most (a vehicle brakes, cuts in, stands still, or
# has right of way); the rest (free road, a slower lead to overtake) are "free driving"
EVENT_SCENARIOS = ("lead_brake", "cut_in", "stalled", "merge_yield", "junction",
                   "roundabout_yield")
SUBSETS = ("events", "free")


def subset_of(scenario: str) -> str:
    """``"events"`` for a scenario with a scripted event to react to (:data:`EVENT_SCENARIOS`:
    a vehicle brakes, cuts in, stands still or has right of way), ``"free"`` for the other
    events of :data:`EVENTS` (free road, a slower lead to overtake)."""
    if scenario in EVENT_SCENARIOS:
        return "events"
    if scenario in EVENTS:
        return "free"
    raise ValueError(f"unknown scenario {scenario!r}: neither an event sample "
                     f"{EVENT_SCENARIOS} nor another event of the recipes {EVENTS}")


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
    reaction_delay_s: float = 0.0  # the ego driver's delay from deciding to accelerating

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r}; known events: {EVENTS}")
        if not 10.0 <= self.duration_s <= 120.0:
            raise ValueError(f"duration_s must be in [10, 120], got {self.duration_s}")
        if not 0 <= self.traffic <= 60:
            raise ValueError(f"traffic must be in [0, 60], got {self.traffic}")
        if isinstance(self.reaction_delay_s, bool) or not isinstance(
                self.reaction_delay_s, int | float):
            raise ValueError(f"reaction_delay_s must be a number of seconds, "
                             f"got {self.reaction_delay_s!r}")
        if not 0.0 <= self.reaction_delay_s <= 2.0 or abs(
                self.reaction_delay_s * 10 - round(self.reaction_delay_s * 10)) > 1e-9:
            raise ValueError(f"reaction_delay_s must be a multiple of 0.1 s in [0, 2], "
                             f"got {self.reaction_delay_s}")

    @property
    def road(self) -> str:
        return ROAD_OF_EVENT[self.event]


RECIPE_KEYS = ("description", "duration_s", "traffic", "reaction_delay_s", "events",
               "camera_rig")
# the SampleConfig fields a recipe's camera rig may set (vla.data.build applies them)
CAMERA_RIG_KEYS = ("cameras", "frames", "frame_gap_s", "image_width", "image_height",
                   "horizon_row")


@dataclass(frozen=True)
class Recipe:
    """A data recipe: a weighted mix of scenarios and the camera rig that films them.

    Read from a YAML file (``data_recipes/<name>.yaml`` or a user's) by :func:`load_recipe`;
    the order of ``mix`` is the file's, and it matters: episodes are drawn by index.
    """

    name: str
    mix: tuple[tuple[ScenarioSpec, float], ...]
    camera_rig: dict = field(default_factory=dict)  # SampleConfig fields (CAMERA_RIG_KEYS)
    description: str = ""
    source: str = ""  # the file it was read from

    def __post_init__(self) -> None:
        where = self.source or self.name
        if not self.mix:
            raise ValueError(f"{where}: a recipe needs at least one event")
        if any(w < 0 for _, w in self.mix) or sum(w for _, w in self.mix) <= 0:
            raise ValueError(f"{where}: event weights must be >= 0 with a positive sum")
        unknown = sorted(set(self.camera_rig) - set(CAMERA_RIG_KEYS))
        if unknown:
            raise ValueError(f"{where}: camera_rig: unknown keys {unknown}; known keys: "
                             f"{list(CAMERA_RIG_KEYS)}")

    def as_dict(self) -> dict:
        """The recipe as its file holds it (for a data set's metadata)."""
        first = self.mix[0][0]
        return {"description": self.description, "duration_s": first.duration_s,
                "traffic": first.traffic, "reaction_delay_s": first.reaction_delay_s,
                "events": {spec.event: weight for spec, weight in self.mix},
                "camera_rig": dict(self.camera_rig)}


def recipe_names() -> list[str]:
    """The packaged recipes (``data_recipes/*.yaml``)."""
    from vla.resources import resource_names

    return resource_names("data_recipes")


def load_recipe(recipe: str | Path) -> Recipe:
    """The recipe ``recipe`` names: a packaged recipe's name (``default``, ``highway``, ...) or a
    recipe file (a path ending in .yaml). Unknown keys, events or bad values are refused with
    the file and the key named."""
    from vla.resources import load_yaml_settings

    path, raw = load_yaml_settings("data_recipes", recipe, "recipe", RECIPE_KEYS)
    events = raw.get("events")
    if not isinstance(events, dict) or not events:
        raise ValueError(f"{path}: 'events' must map each scripted event to its weight")
    rig = raw.get("camera_rig") or {}
    if not isinstance(rig, dict):
        raise ValueError(f"{path}: 'camera_rig' must be a mapping of {list(CAMERA_RIG_KEYS)}")
    scene = {k: raw[k] for k in ("duration_s", "traffic", "reaction_delay_s") if k in raw}
    mix = []
    for event, weight in events.items():
        if event not in EVENTS:
            raise ValueError(f"{path}: events: unknown event {event!r}; known events: "
                             f"{list(EVENTS)}")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"{path}: events: {event}: the weight must be a number, "
                             f"got {weight!r}")
        try:
            mix.append((ScenarioSpec(event, **scene), weight))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
    return Recipe(name=path.stem, mix=tuple(mix), camera_rig=dict(rig),
                  description=str(raw.get("description", "")), source=str(path))


def episode_specs(recipe: Recipe | str, episodes: int, seed: int) -> list[ScenarioSpec]:
    """The scenario of each episode, drawn deterministically from the recipe's weights
    (``recipe``: a :class:`Recipe`, or what :func:`load_recipe` reads)."""
    import numpy as np

    mix = (recipe if isinstance(recipe, Recipe) else load_recipe(recipe)).mix
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
