"""Write converted log samples as a ``vla`` data set: split by scene (or clip), stratified by
scenario, with the metadata the rest of ``vla`` reads (``vla_data.json``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from vla.convert.common import HZ
from vla.data.build import SPLITS, save_dataset, split_by_event, split_events
from vla.sim.observation import SampleConfig

# the simulator's default rig: converted samples keep its frame gap, history and horizon
_RIG = SampleConfig()
FRAME_GAP_S = _RIG.frame_gap_s
HISTORY_S = _RIG.history_s
HORIZON_S = _RIG.horizon_s


def episode_strata(episode_ids, scenarios) -> dict[int, str]:
    """The stratum of each scene or clip, for the split: its most common scenario other than
    ``log`` (a clip with one reasoning event among many regular keyframes is a
    ``reasoning_event`` clip), else ``log``."""
    by_episode: dict[int, Counter] = {}
    for episode, scenario in zip(episode_ids, scenarios, strict=True):
        by_episode.setdefault(int(episode), Counter())[scenario] += 1
    strata = {}
    for episode, counts in by_episode.items():
        named = Counter({k: v for k, v in counts.items() if k != "log"})
        strata[episode] = named.most_common(1)[0][0] if named else "log"
    return strata


def write_converted(rows: list[dict], out: str | Path, *, source: str, root: str | Path,
                    cameras: list[str], image_size: tuple[int, int], skipped: Counter,
                    seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                    extra: dict | None = None) -> dict:
    """Split ``rows`` (from :func:`vla.convert.common.make_row`) by ``episode_id`` (a scene or
    clip), stratified by :func:`episode_strata`, and save them into ``out``
    (which must not exist; nothing is left there if writing fails). ``skipped`` counts the
    samples or scenes left out, by reason. Returns the metadata written."""
    if not rows:
        raise ValueError(f"{source}: no sample could be converted from {root} "
                         f"(skipped: {dict(skipped) or 'none'})")
    stratum = episode_strata([r["episode_id"] for r in rows], [r["scenario"] for r in rows])
    split_of = split_by_event(stratum, fractions, seed)
    rows_by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for row in rows:
        rows_by_split[split_of[row["episode_id"]]].append(row)
    width, height = image_size
    meta = {
        "format": "vla-driving-scenes/1",
        "source": source,
        "converted_from": str(root),
        "recipe": None,
        "episodes": len(stratum),
        "episodes_kept": len(stratum),
        "dropped_episodes": 0,
        "dropped_reasons": {},
        "skipped": dict(sorted(skipped.items())),
        "samples": len(rows),
        "split_samples": {s: len(rows_by_split[s]) for s in SPLITS},
        "split": "by scene or clip, stratified by scenario",
        "split_events": split_events(stratum, split_of),
        "seed": seed,
        "future_hz": int(HZ),
        "horizon_s": HORIZON_S,
        "history_s": HISTORY_S,
        "cameras": list(cameras),
        "frames": 2,
        "config": {"samples": {"cameras": list(cameras), "frames": 2,
                               "frame_gap_s": FRAME_GAP_S, "image_width": width,
                               "image_height": height, "history_s": HISTORY_S,
                               "horizon_s": HORIZON_S}},
        **(extra or {}),
    }
    save_dataset(rows_by_split, meta, out)
    return meta
