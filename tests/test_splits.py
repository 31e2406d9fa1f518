"""Splits stratified by event, and evaluation subsets stratified by scenario (no simulator)."""

from collections import Counter

import pytest
from datasets import Dataset

from vla.data.build import SPLITS, split_by_event, split_events
from vla.data.subsets import stratified_indices, stratified_subset, subset_record
from vla.sim.recipes import episode_specs


def _events(episodes=60, seed=0) -> dict[int, str]:
    return {i: spec.event for i, spec in enumerate(episode_specs("default", episodes, seed))}


def _check_stratified(events: dict[int, str], split: dict[int, str]) -> None:
    assert set(split) == set(events)  # every kept episode in exactly one split
    assert set(split.values()) <= set(SPLITS)
    counts = split_events(events, split)
    assert sum(sum(c.values()) for c in counts.values()) == len(events)
    for event, n in Counter(events.values()).items():
        if n >= 3:
            assert counts["validation"].get(event, 0) >= 1, event
            assert counts["test"].get(event, 0) >= 1, event
            assert counts["train"].get(event, 0) >= 1, event
        else:
            assert counts["train"][event] == n, event


def test_every_event_with_three_episodes_reaches_validation_and_test():
    events = _events()
    per_event = Counter(events.values())
    assert sum(n >= 3 for n in per_event.values()) >= 8  # the check below means something
    split = split_by_event(events, (0.8, 0.1, 0.1), seed=0)
    _check_stratified(events, split)
    # the fractions hold within each event (rounded, at least one each)
    counts = split_events(events, split)
    for event, n in per_event.items():
        expected = max(1, round(0.1 * n)) if n >= 3 else 0
        assert counts["validation"].get(event, 0) == expected
        assert counts["test"].get(event, 0) == expected


def test_split_is_deterministic_and_follows_the_seed():
    events = _events()
    a = split_by_event(events, (0.8, 0.1, 0.1), seed=5)
    assert a == split_by_event(dict(reversed(list(events.items()))), (0.8, 0.1, 0.1), seed=5)
    assert split_events(events, a) == split_events(events, split_by_event(events, seed=6))
    assert a != split_by_event(events, (0.8, 0.1, 0.1), seed=6)


def test_dropped_episodes_do_not_empty_an_event_in_validation_or_test():
    events = _events()
    per_event = Counter(events.values())
    big = max(per_event, key=per_event.get)
    episodes = sorted(i for i, e in events.items() if e == big)
    # drop all but three of the largest event's episodes, and every episode but two of another
    small = next(e for e, n in per_event.items() if e != big and n >= 3)
    dropped = set(episodes[3:]) | set(sorted(i for i, e in events.items() if e == small)[2:])
    kept = {i: e for i, e in events.items() if i not in dropped}
    split = split_by_event(kept, seed=0)
    _check_stratified(kept, split)
    counts = split_events(kept, split)
    assert counts["validation"][big] == counts["test"][big] == counts["train"][big] == 1
    assert counts["train"][small] == 2 and small not in counts["test"]


def test_a_small_build_still_fills_every_split():
    # three episodes of three events: too few to stratify, one episode per split
    split = split_by_event({0: "cut_in", 1: "stalled", 2: "lead_brake"}, seed=0)
    assert sorted(split.values()) == ["test", "train", "validation"]
    split = split_by_event({0: "cut_in", 1: "stalled"}, seed=0)
    assert sorted(split.values()) == ["train", "validation"]
    assert split_by_event({}, seed=0) == {}


def _split(counts: dict[str, int]) -> Dataset:
    scenarios = [s for s, n in counts.items() for _ in range(n)]
    order = sorted(range(len(scenarios)), key=lambda i: (i * 7919) % len(scenarios))
    return Dataset.from_dict({"scenario": [scenarios[i] for i in order],
                              "row": list(range(len(scenarios)))})


COUNTS = {"junction": 120, "lead_brake": 80, "cut_in": 60, "stalled": 30, "merge_yield": 8,
          "roundabout_yield": 2}


def test_subset_is_proportional_per_scenario():
    split = _split(COUNTS)
    total = len(split)
    for n in (6, 20, 64, 150):
        subset, indices = stratified_subset(split, n, seed=0, return_indices=True)
        assert len(subset) == n == len(set(indices))
        assert subset["row"] == indices == sorted(indices)  # the split's order
        got = Counter(subset["scenario"])
        assert set(got) == set(COUNTS)  # every scenario, n >= number of scenarios
        for scenario, rows in COUNTS.items():
            share = n * rows / total
            assert got[scenario] >= 1
            if share >= 1:
                assert abs(got[scenario] - share) <= 1.5, (n, scenario, got)
    # fewer rows than scenarios: the largest scenarios, one row each
    assert Counter(stratified_subset(split, 3)["scenario"]) == {"junction": 1, "lead_brake": 1,
                                                                "cut_in": 1}


def test_subset_is_deterministic_seeded_and_nested():
    split = _split(COUNTS)
    a = stratified_indices(split["scenario"], 40, seed=1)
    assert a == stratified_indices(split["scenario"], 40, seed=1)
    assert a != stratified_indices(split["scenario"], 40, seed=2)
    assert set(stratified_indices(split["scenario"], 30, seed=1)) < set(a)
    record = subset_record(a, 1, len(split))
    assert record["seed"] == 1 and record["indices"] == a and record["of_rows"] == len(split)
    assert subset_record(range(len(split)), 0, len(split)) == {"method": "whole split",
                                                               "of_rows": len(split)}


def test_subset_of_the_whole_split_keeps_it():
    split = _split(COUNTS)
    for n in (None, len(split), len(split) + 5):
        subset, indices = stratified_subset(split, n, return_indices=True)
        assert subset["row"] == list(range(len(split))) and indices == subset["row"]
    assert len(stratified_subset(split, 0)) == 0
    with pytest.raises(ValueError, match="n must be"):
        stratified_indices(split["scenario"], -1)


def test_check_names_an_event_missing_from_validation_or_test():
    from vla.data.check import _stratification_problems

    ok = {"train": {"cut_in": 2, "junction": 1}, "validation": {"cut_in": 1},
          "test": {"cut_in": 1}}
    assert _stratification_problems(ok) == []  # junction: one episode, train only
    bad = {"train": {"cut_in": 3, "stalled": 2}, "validation": {"stalled": 1},
           "test": {"cut_in": 1}}
    assert _stratification_problems(bad) == [
        "event 'cut_in' has 4 episodes but none in validation",
        "event 'stalled' has 3 episodes but none in test"]
