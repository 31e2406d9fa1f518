"""Build a driving-scene data set with highway-env and save it as a Hugging Face dataset.

Episodes are simulated in worker processes (one seed each, derived from the build
seed), turned into samples, split by episode (never by frame) into train /
validation / test within each scripted event (see :func:`split_by_event`), and saved
with ``DatasetDict.save_to_disk`` into a temporary folder next to the output, which is
renamed into place only when complete: a killed build never leaves a folder that looks
like a data set. The same seed gives the same data set.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vla.sim.observation import SampleConfig
from vla.sim.recipes import Recipe, episode_specs, load_recipe

META_FILE = "vla_data.json"
SPLITS = ("train", "validation", "test")


def rig_sample_config(recipe: Recipe, **overrides) -> SampleConfig:
    """The :class:`SampleConfig` of the recipe's camera rig, with ``overrides`` (SampleConfig
    fields; None leaves the rig's value) on top; a bad value is refused naming the recipe."""
    values = {**recipe.camera_rig, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return SampleConfig(**values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{recipe.source or recipe.name}: camera_rig: {exc}") from exc


@dataclass(frozen=True)
class BuildConfig:
    """What to build. ``recipe``: a packaged recipe's name or a recipe file
    (:func:`vla.sim.recipes.load_recipe`); ``samples`` None takes the recipe's camera rig."""

    recipe: str = "default"
    episodes: int = 300
    seed: int = 0
    workers: int = 1
    samples: SampleConfig | None = None
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def __post_init__(self) -> None:
        recipe = load_recipe(self.recipe)  # refuses an unknown name or a bad file
        object.__setattr__(self, "recipe", str(self.recipe))
        if self.samples is None:
            object.__setattr__(self, "samples", rig_sample_config(recipe))
        if self.episodes < 3:
            raise ValueError(f"episodes must be >= 3 (one per split), got {self.episodes}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1) > 1e-6 \
                or min(self.split_fractions) < 0:
            raise ValueError(f"split_fractions must be 3 non-negative numbers summing to 1, "
                             f"got {self.split_fractions}")


def features():
    """The columns of a data set: simulator builds and converted logs share them."""
    from datasets import Features, Image, List, Value

    return Features({
        "sample_id": Value("string"),
        "episode_id": Value("int32"),
        "episode_seed": Value("int64"),
        "scenario": Value("string"),
        "road": Value("string"),
        "t0": Value("float32"),
        "images": List(Image()),
        "camera_names": List(Value("string")),
        "frame_times": List(Value("float32")),
        "topdown": Image(),
        "history": List(List(Value("float32"))),
        "ego_speed": Value("float32"),
        "ego_accel": Value("float32"),
        "ego_yaw_rate": Value("float32"),
        "command": Value("string"),
        "future": List(List(Value("float32"))),
        "future_valid": List(Value("bool")),
        "source": Value("string"),
        "decision_lon": Value("string"),
        "decision_lat": Value("string"),
        "critical": Value("string"),
        "reasoning": Value("string"),
        "metric_cache": Value("string"),
    })


def _episode_job(args):
    """Worker: simulate one episode and turn it into rows (or report why it was dropped)."""
    index, spec, seed, sample_config = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from vla.data.samples import episode_samples
    from vla.sim.episode import run_episode
    from vla.sim.world import EpisodeDropped

    start = time.perf_counter()
    try:
        log = run_episode(spec, seed)
    except EpisodeDropped as exc:
        return index, spec.event, None, exc.reason, time.perf_counter() - start
    rows = episode_samples(log, index, sample_config)
    return index, spec.event, rows, None, time.perf_counter() - start


SPLIT_METHOD = "by episode, stratified by event"
MIN_EPISODES_TO_STRATIFY = 3  # one each for train, validation and test


def split_by_event(events: dict[int, str], fractions=(0.8, 0.1, 0.1),
                   seed: int = 0) -> dict[int, str]:
    """The split of each episode (``{episode index: event}`` in, ``{episode index: split}`` out).

    Episodes are split within each event: an event with at least 3 episodes puts at least one
    in validation and one in test and the rest by ``fractions`` (rounded), after a permutation
    seeded by ``seed`` and the event's name; an event with fewer episodes goes to train. Pass
    only the episodes kept after simulation, so that a dropped episode cannot empty an event
    in validation or test. Should validation or test still be empty (a small build where no
    event has 3 episodes), it takes one episode from the event with the most train episodes
    while train keeps at least one. The same input and seed give the same split.
    """
    by_event: dict[str, list[int]] = {}
    for index in sorted(events):
        by_event.setdefault(events[index], []).append(index)
    split: dict[int, str] = {}
    train_order: dict[str, list[int]] = {}  # each event's train episodes, in permuted order
    for event in sorted(by_event):
        indices = by_event[event]
        rng = np.random.default_rng([seed, 7919, zlib.crc32(event.encode())])
        order = [indices[i] for i in rng.permutation(len(indices))]
        n_val = n_test = 0
        if len(order) >= MIN_EPISODES_TO_STRATIFY:
            n_val = max(1, int(round(fractions[1] * len(order))))
            n_test = max(1, int(round(fractions[2] * len(order))))
            while n_val + n_test > len(order) - (fractions[0] > 0):
                if n_val >= n_test and n_val > 1:
                    n_val -= 1
                elif n_test > 1:
                    n_test -= 1
                else:
                    break
        n_train = len(order) - n_val - n_test
        for rank, index in enumerate(order):
            split[index] = "train" if rank < n_train else "validation" \
                if rank < n_train + n_val else "test"
        train_order[event] = order[:n_train]
    # a small build: fill an empty validation / test split from the largest train event
    rng = np.random.default_rng([seed, 7919])
    tie = {e: float(r) for e, r in zip(sorted(train_order), rng.random(len(train_order)),
                                       strict=True)}
    for name in ("validation", "test"):
        if name in split.values() or sum(len(v) for v in train_order.values()) < 2:
            continue
        event = max(train_order, key=lambda e: (len(train_order[e]), tie[e]))
        split[train_order[event].pop()] = name
    return split


def split_events(events: dict[int, str], split: dict[int, str]) -> dict[str, dict[str, int]]:
    """``{split: {event: episodes}}`` of a split from :func:`split_by_event`."""
    counts = {s: Counter() for s in SPLITS}
    for index, name in split.items():
        counts[name][events[index]] += 1
    return {s: dict(sorted(counts[s].items())) for s in SPLITS}


def _simulate_episodes(jobs: list[tuple], workers: int, progress: bool) -> list[tuple]:
    """Every episode job's result (:func:`_episode_job`), in the order they finish: in
    ``workers`` forked processes, or here when ``workers`` is 1."""
    from tqdm import tqdm

    results = []
    if workers == 1:
        iterator = map(_episode_job, jobs)
        pool = None
    else:
        pool = mp.get_context("fork").Pool(workers)
        iterator = pool.imap_unordered(_episode_job, jobs)
    try:
        for result in tqdm(iterator, total=len(jobs), disable=not progress, desc="episodes",
                           unit="ep"):
            results.append(result)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


def _rows_by_split(results: list[tuple], split_of: dict[int, str]):
    """The kept episodes' rows grouped by split (in episode order), the dropped episodes
    counted by reason and by scenario, and the episodes' total CPU seconds."""
    rows_by_split: dict[str, list] = {s: [] for s in SPLITS}
    dropped: Counter = Counter()
    dropped_by_scenario: Counter = Counter()
    cpu_seconds = 0.0
    for index, event, rows, reason, seconds in results:
        cpu_seconds += seconds
        if rows is None:
            dropped[reason] += 1
            dropped_by_scenario[event] += 1
            continue
        rows_by_split[split_of[index]].extend(rows)
    return rows_by_split, dropped, dropped_by_scenario, cpu_seconds


def build_dataset(config: BuildConfig, out: str | Path, progress: bool = True) -> dict:
    """Build the data set into ``out`` (which must not exist yet); return its metadata."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; remove it or choose another --out")
    tmp = _partial_folder(out)  # made first: a build under way shows beside its --out
    recipe = load_recipe(config.recipe)
    specs = episode_specs(recipe, config.episodes, config.seed)
    seeds = np.random.default_rng(config.seed).integers(0, 2**31 - 1, size=config.episodes)
    jobs = [(i, spec, int(seeds[i]), config.samples) for i, spec in enumerate(specs)]
    start = time.perf_counter()
    results = _simulate_episodes(jobs, config.workers, progress)
    wall = time.perf_counter() - start
    results.sort(key=lambda r: r[0])
    kept = {index: event for index, event, rows, _, _ in results if rows is not None}
    split_of = split_by_event(kept, config.split_fractions, config.seed)
    rows_by_split, dropped, dropped_by_scenario, cpu_seconds = _rows_by_split(results, split_of)
    n_samples = sum(len(r) for r in rows_by_split.values())
    meta = {
        "format": "vla-driving-scenes/1",
        "recipe": config.recipe,
        "recipe_spec": recipe.as_dict(),
        "episodes": config.episodes,
        "episodes_kept": config.episodes - sum(dropped.values()),
        "dropped_episodes": sum(dropped.values()),
        "dropped_reasons": dict(dropped),
        "dropped_by_scenario": dict(dropped_by_scenario),
        "samples": n_samples,
        "split_samples": {s: len(rows_by_split[s]) for s in SPLITS},
        "split": SPLIT_METHOD,
        "split_events": split_events(kept, split_of),
        "seed": config.seed,
        "workers": config.workers,
        "build_wall_seconds": round(wall, 1),
        "build_cpu_seconds": round(cpu_seconds, 1),
        "keyframes_per_min_per_core": round(n_samples / max(cpu_seconds, 1e-9) * 60, 1),
        "future_hz": 10,
        "horizon_s": config.samples.horizon_s,
        "history_s": config.samples.history_s,
        "cameras": list(config.samples.cameras),
        "frames": config.samples.frames,
        "config": {**asdict(config), "samples": asdict(config.samples)},
    }
    save_dataset(rows_by_split, meta, out, tmp)
    return meta


def _partial_folder(out: Path) -> Path:
    """A fresh hidden folder beside ``out`` where its data set is written before renaming."""
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def save_dataset(rows_by_split: dict[str, list[dict]], meta: dict, out: str | Path,
                 tmp: Path | None = None) -> None:
    """Write rows (the schema of :func:`features`) as a ``DatasetDict`` with its card and
    metadata into ``out``, which must not exist: everything goes to a hidden folder beside it,
    renamed to ``out`` only once complete, so an interrupted write leaves no half data set. A
    split left empty is not saved (``vla data check`` reports it). ``tmp``: the hidden folder,
    when the caller made it already."""
    from datasets import Dataset, DatasetDict

    from vla.data.card import write_card

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; remove it or choose another --out")
    tmp = tmp if tmp is not None else _partial_folder(out)
    try:
        feats = features()
        dataset = DatasetDict({s: Dataset.from_list(rows_by_split[s], features=feats)
                               for s in SPLITS if rows_by_split.get(s)})
        dataset.save_to_disk(str(tmp))
        write_card(tmp, meta, dataset)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")  # written last
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def served_rig(meta: dict) -> dict:
    """What a server and its client need to know of a data set's camera rig (its metadata,
    ``vla_data.json``): ``images_per_prompt`` (cameras x frames) and ``video_fps`` (1 / the
    frame gap: the rate at which each camera's frames make a video)."""
    gap = float(meta["config"]["samples"]["frame_gap_s"])
    return {"images_per_prompt": len(meta["cameras"]) * meta["frames"], "video_fps": 1.0 / gap}


def is_complete(path: str | Path) -> bool:
    p = Path(path)
    return (p / META_FILE).is_file() and (p / "dataset_dict.json").is_file()


def load_dataset_dir(path: str | Path):
    """(DatasetDict, metadata) of a complete data set; a clear error otherwise."""
    from datasets import load_from_disk

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no data set at {p}")
    if not is_complete(p):
        raise ValueError(f"{p} is not a complete vla data set (missing {META_FILE} or "
                         f"dataset_dict.json): was its build interrupted?")
    return load_from_disk(str(p)), json.loads((p / META_FILE).read_text())
