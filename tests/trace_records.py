"""A small trace file of every kind, written from real samples of a built data set.

Shared by tests/test_trace_tools.py and tests/test_trace_viewer_browser.py. The decisions
go through the real parser, :func:`vla.traces.decision_fields` and the GRPO rewards
(:func:`vla.rl.rewards.score_completion`) with a waypoint codec fitted on the data set's
train split and saved in a model folder named by a ``config.json`` beside the trace file
(as a GRPO run writes it). Per test sample: a consistent, an inconsistent and an unparsable
completion as ``rollout`` and as ``grpo`` records; plus a ``predict`` and an ``eval``
record, three ``closed_loop`` steps of the model with PNG frames (the first the expert's
choice, the second on neither axis, the third on the longitudinal axis only), one of a
baseline planner (no text; its derived meta-action is the expert's choice: a kinematic class
the expert's class allows), and two ``closed_loop_episode`` records (the baseline's with a
collision) with a GIF. The agreement flags come from the closed-loop evaluation's own rule
(:func:`vla.evaluation.expert_choice.decision_correct`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla.data.build import load_dataset_dir
from vla.evaluation.expert_choice import decision_correct
from vla.meta_action import KINEMATIC_OF, LATERAL, MetaAction, derive_meta_action
from vla.model.build import CODEC_DIR
from vla.model.parser import ParseError, parse_output
from vla.model.special_tokens import (
    COT_END,
    COT_START,
    META_ACTION_END,
    META_ACTION_START,
    TRAJ_FUTURE_END,
    TRAJ_FUTURE_START,
)
from vla.policy import PolicyOutput
from vla.rl.rewards import score_completion
from vla.traces import append_trace, decision_fields, grpo_record
from vla.trajectory.registry import make_codec
from vla.trajectory.types import ego_state_of


@dataclass
class BuiltTrace:
    path: Path
    data_dir: Path
    model_dir: Path
    samples: list[str]
    kinds: dict[str, int] = field(default_factory=dict)
    consistent_ids: list[int] = field(default_factory=list)
    inconsistent_ids: list[int] = field(default_factory=list)
    unparsable_ids: list[int] = field(default_factory=list)
    critical_agent: tuple[int, int] | None = None   # (record id, agent id) cited in reasoning


def output_text(reasoning: str, lon: str, lat: str, ids, close_reasoning: bool = True) -> str:
    tokens = "".join(f"<traj_{int(i)}>" for i in ids)
    return (f"{COT_START}{reasoning}{COT_END if close_reasoning else ''}"
            f"{META_ACTION_START}{lon}, {lat}{META_ACTION_END}"
            f"{TRAJ_FUTURE_START}{tokens}{TRAJ_FUTURE_END}")


def _other_lateral(lat: str) -> str:
    return next(x for x in LATERAL if x != lat)


def build_trace(data_dir: Path, out: Path, n_samples: int = 3) -> BuiltTrace:
    from PIL import Image

    dataset, _meta = load_dataset_dir(data_dir)
    train = dataset["train"].select_columns(["future", "ego_speed", "ego_accel",
                                             "ego_yaw_rate"])
    codec = make_codec("waypoint", rate_hz=1.0, bins=64)
    codec.fit([np.asarray(r["future"]) for r in train], [ego_state_of(r) for r in train])
    model_dir = out / "model"
    codec.save(model_dir / CODEC_DIR)
    (out / "config.json").write_text(json.dumps({"base": str(model_dir),
                                                 "data": str(data_dir)}))
    # the first sample (of any split) with a critical agent, which the completions' reasoning
    # cites as "id N", then the first test samples
    def agents_of(row) -> list[dict]:
        return [c for c in json.loads(row["critical"]) if c.get("kind") == "agent"]

    splits = [dataset[s] for s in ("test", "validation", "train") if s in dataset]
    cited = next(r for split in splits for r in split.select_columns(
        ["sample_id", "critical", "reasoning"]) if agents_of(r))
    where = {sid: (split, i) for split in reversed(splits)
             for i, sid in enumerate(split["sample_id"])}
    ids_ = [cited["sample_id"]] + [sid for sid in splits[0]["sample_id"]
                                   if sid != cited["sample_id"]][:n_samples - 1]
    rows = [where[sid][0][where[sid][1]] for sid in ids_]
    path = out / "traces.jsonl"
    built = BuiltTrace(path, Path(data_dir), model_dir, [r["sample_id"] for r in rows])
    line = 0

    def write(record: dict, verdict: str | None = None) -> int:
        nonlocal line
        append_trace(path, record)
        line += 1
        built.kinds[record["kind"]] = built.kinds.get(record["kind"], 0) + 1
        if verdict is not None:
            getattr(built, f"{verdict}_ids").append(line)
        return line

    for row in rows:
        ego = ego_state_of(row)
        ids = codec.encode(np.asarray(row["future"]), ego)
        trajectory = codec.decode(ids, ego)
        derived = derive_meta_action(trajectory, float(row["ego_speed"]))
        reasoning = row["reasoning"]
        agents = [int(c["id"]) for c in agents_of(row)]
        if agents and f"id {agents[0]}" not in reasoning:
            # the labels name no agent ids; a model's reasoning may cite one
            reasoning += f" The vehicle to watch is id {agents[0]}."
        texts = [("consistent", output_text(reasoning, derived.longitudinal, derived.lateral,
                                            ids)),
                 ("inconsistent", output_text(reasoning, derived.longitudinal,
                                              _other_lateral(derived.lateral), ids)),
                 ("unparsable", output_text(reasoning, derived.longitudinal, derived.lateral,
                                            ids, close_reasoning=False))]
        label = {"longitudinal": row["decision_lon"], "lateral": row["decision_lat"]}
        for k, (verdict, text) in enumerate(texts):
            try:
                decision, error = parse_output(text, codec.num_tokens, codec, ego), None
            except ParseError as exc:
                decision, error = None, exc
            rid = write({"kind": "rollout", "sample_id": row["sample_id"], "completion": k,
                         "model": "test-model",
                         **decision_fields(text, decision, error, row), "label": label,
                         "tokens": {"prompt": 100, "completion": 30}, "seconds": 0.1},
                        verdict)
            if (built.critical_agent is None and decision is not None and agents
                    and f"id {agents[0]}" in reasoning):
                built.critical_agent = (rid, agents[0])
        for verdict, text in texts:
            scored = score_completion(text, row, codec)
            try:
                decision, error = parse_output(text, codec.num_tokens, codec, ego), None
            except ParseError as exc:
                decision, error = None, exc
            output = PolicyOutput(text=text, decision=decision, error=error)
            write(grpo_record(output, row, "policy-0", 1, scored.to_json()).to_json(), verdict)

    first = rows[0]
    ego = ego_state_of(first)
    ids = codec.encode(np.asarray(first["future"]), ego)
    decision = parse_output(output_text(first["reasoning"], "keep_speed", "keep_lane", ids),
                            codec.num_tokens, codec, ego)
    fields_ = decision_fields(output_text(first["reasoning"], "keep_speed", "keep_lane", ids),
                              decision, None, first)
    write({"kind": "predict", "sample_id": first["sample_id"], "model": str(model_dir),
           **fields_, "label": {"longitudinal": first["decision_lon"],
                                "lateral": first["decision_lat"],
                                "reasoning": first["reasoning"]},
           "tokens": {"prompt": 100, "completion": 30}, "seconds": 0.2})
    write({"kind": "eval", "sample_id": first["sample_id"], "model": str(model_dir), **fields_,
           "label": {"longitudinal": first["decision_lon"], "lateral": first["decision_lat"]},
           "metrics": {"parsed": True, "l2_avg_3s": 0.1}})

    frames = out / "frames"
    frames.mkdir(exist_ok=True)

    def as_json(meta: MetaAction) -> dict:
        return {"longitudinal": meta.longitudinal, "lateral": meta.lateral}

    def closed_loop_fields(chosen: MetaAction, source: str, expert: MetaAction) -> dict:
        lon, lat = decision_correct(chosen, source, expert)
        return {"expert_meta_action": as_json(expert), "decision_correct_lon": lon,
                "decision_correct_lat": lat}

    written = decision.meta_action                  # keep_speed, keep_lane
    experts = (written, MetaAction("yield", _other_lateral(written.lateral)),
               MetaAction(written.longitudinal, _other_lateral(written.lateral)))
    for step, expert in enumerate(experts):
        images = []
        for c, image in enumerate(first["images"][-3:]):
            name = f"frames/ep0_{step}_{c}.png"
            image.convert("RGB").save(out / name)
            images.append(name)
        write({"kind": "closed_loop", "episode": "ep0", "planner": "model",
               "scenario": first["scenario"], "seed": 7, "step": step, "t": step * 0.5,
               "sample_id": f"ep0@{step * 0.5}", **fields_,
               **closed_loop_fields(written, "written", expert),
               "images": images, "ego_speed": float(first["ego_speed"]),
               "trajectory_world": [[0.0, 0.0], [1.0, 0.1]]})
    derived = derive_meta_action(np.asarray(first["future"]), float(first["ego_speed"]))
    # the expert's class: a decision class other than the derived kinematic one that allows
    # it where there is one (follow for keep_speed, yield for decelerate or stop)
    expert_lon = next((k for k, allowed in KINEMATIC_OF.items()
                       if derived.longitudinal in allowed and k != derived.longitudinal),
                      derived.longitudinal)
    write({"kind": "closed_loop", "episode": "ep1", "planner": "constant-velocity",
           "scenario": first["scenario"], "seed": 7, "step": 0, "t": 0.0,
           "sample_id": "ep1@0.0", "raw_output": None, "parsed": None, "error": None,
           "decision": None, "derived_meta_action": as_json(derived), "ade_m": None,
           **closed_loop_fields(derived, "derived", MetaAction(expert_lon, derived.lateral)),
           "images": [], "ego_speed": float(first["ego_speed"]), "trajectory_world": None})
    Image.new("RGB", (32, 32), (200, 30, 30)).save(out / "frames" / "ep0.gif")
    for episode, planner, collision, accuracy in (("ep0", "model", 0, (0.6667, 0.3333)),
                                                  ("ep1", "constant-velocity", 1, (1.0, 1.0))):
        score = 0.9 - collision * 0.9
        write({"kind": "closed_loop_episode", "episode": episode, "planner": planner,
               "scenario": first["scenario"], "seed": 7,
               "metrics": {"collision": collision, "off_road": 0, "progress": 0.8,
                           "ttc_violations": 0, "comfort": 1, "pdms_like": score,
                           "decision_accuracy_lon": accuracy[0],
                           "decision_accuracy_lat": accuracy[1], "decisions": 3 - 2 * collision,
                           "parse_rate": 1.0 if planner == "model" else None},
               "gif": "frames/ep0.gif"})
    return built
