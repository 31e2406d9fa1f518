"""The Policy protocol's implementations, the typed trace records, the one JSONL reader and
the server URL convention."""

import pickle
import socket
import warnings

import numpy as np
import pytest

from vla.policy import Policy, PolicyOutput, one
from vla.serving.urls import ServerUnreachable, api_base, served_models, server_root
from vla.traces import (
    RECORD_CLASSES,
    TRACE_KINDS,
    TraceRecord,
    append_trace,
    closed_loop_episode_record,
    closed_loop_record,
    eval_record,
    grpo_record,
    predict_record,
    read_jsonl,
    read_records,
    rollout_record,
    trim_log,
)


@pytest.fixture(scope="module")
def scenes(small_train_split):
    return [small_train_split[i] for i in range(2)]


# -- reference policies --

def test_reference_policies_answer_through_the_protocol(scenes):
    from vla.reference import blind_policies, kinematic_policies, trajectory_baselines

    policies = {**blind_policies(), **kinematic_policies(), **trajectory_baselines()}
    for name, policy in policies.items():
        assert isinstance(policy, Policy) and policy.name == name
        outputs = policy.decide(scenes, 2, 1.0)
        assert len(outputs) == 4 and all(isinstance(o, PolicyOutput) for o in outputs)
        assert all(o.trajectory.shape == (60, 3) for o in outputs)
        assert outputs[0].decision is None or outputs[0].meta_action is not None
    expert = one(trajectory_baselines()["expert"], scenes[0])
    assert np.array_equal(expert.trajectory, np.asarray(scenes[0]["future"], float))
    with pytest.raises(ValueError, match="n must be at least 1"):
        blind_policies()["blind-prior"].decide(scenes, 0)
    pickle.loads(pickle.dumps(trajectory_baselines()))  # they go to worker processes


def test_transformers_policy_greedy_and_seeded_samples(tiny_model_dir, scenes):
    from vla.model.generate import TransformersPolicy, generate_decision, prompt_inputs
    from vla.model.loading import load_model_dir

    loaded = load_model_dir(tiny_model_dir)
    # the data set's rig (2 frames per camera): each camera one video of one temporal patch
    inputs = prompt_inputs(loaded.processor, scenes[0])
    cameras = list(dict.fromkeys(scenes[0]["camera_names"]))
    assert "pixel_values" not in inputs
    assert inputs["video_grid_thw"][:, 0].tolist() == [1] * len(cameras)
    policy = TransformersPolicy(loaded, max_reasoning_tokens=12)
    assert isinstance(policy, Policy) and policy.name == str(tiny_model_dir)
    greedy = policy.decide(scenes[:1])
    (out,) = greedy
    assert out.parsed and out.text and out.trajectory.shape == (60, 3)
    assert out.completion_tokens == len(out.token_ids) > 0 and out.prompt_tokens > 0
    assert out.seconds > 0 and out.error is None
    sampled = policy.decide(scenes[:1], 2, 1.0)
    again = generate_decision(loaded, scenes[0], do_sample=True, seed=1,
                              max_reasoning_tokens=12)
    assert len(sampled) == 2 and sampled[1].token_ids == again.token_ids  # seed = index
    with pytest.raises(ValueError, match="greedy decoding"):
        policy.decide(scenes[:1], 2, 0.0)


# -- trace records --

def _outputs(scene):
    from vla.reference import blind_prior

    decision = blind_prior(scene)
    return PolicyOutput(text="<text>", decision=decision, prompt_tokens=10,
                        completion_tokens=3, token_ids=[1, 2, 3], seconds=0.5)


def test_every_record_kind_round_trips(scenes):
    from vla.meta_action import MetaAction

    scene = scenes[0]
    out = _outputs(scene)
    records = [
        predict_record(out, scene, "m"), rollout_record(out, scene, "m", 1),
        eval_record(out, scene, "m", {"parsed": True}),
        grpo_record(out, scene, "policy-3", 3, {"total": 0.5}),
        closed_loop_record(out, episode="model-lead_brake-1", planner="model",
                           scenario="lead_brake", seed=1, step=10, t=1.0, ego_speed=12.3456,
                           expert_meta_action=MetaAction("keep_speed", "keep_lane"),
                           correct=(True, False), images=["frames/a.png"],
                           trajectory_world=[[0.123, 1.0]]),
        closed_loop_record(PolicyOutput(trajectory=out.trajectory), episode="cv-x-1",
                           planner="constant-velocity", scenario="x", seed=1, step=0, t=0.0,
                           ego_speed=3.0, derived_meta_action=MetaAction("keep_speed",
                                                                         "keep_lane")),
        closed_loop_episode_record(episode="model-x-1", planner="model", scenario="x", seed=1,
                                   metrics={"pdms_like": 0.5}, gif=None)]
    assert {r.KIND for r in records} == set(TRACE_KINDS)
    for record in records:
        data = record.to_json()
        assert data["kind"] == record.KIND and TraceRecord.from_json(data) == record
        assert TraceRecord.from_json({**data, "note": 1}).to_json() == {**data, "note": 1}
    grpo = records[3].to_json()  # the GRPO record carries the parsed decision like the others
    assert grpo["decision"]["meta_action"] == out.decision.meta_action.to_json()
    assert grpo["derived_meta_action"] is not None and grpo["ade_m"] is not None
    assert grpo["token_ids"] == [1, 2, 3] and grpo["rewards"] == {"total": 0.5}
    cl = records[4].to_json()
    assert cl["sample_id"] == "model-lead_brake-1@1.0" and cl["decision_correct_lat"] is False
    assert "model" not in cl and "label" not in cl and cl["ego_speed"] == 12.346
    assert records[5].to_json()["parsed"] is None
    assert set(RECORD_CLASSES) == set(TRACE_KINDS)
    with pytest.raises(ValueError, match="unknown trace record kind 'nope'"):
        TraceRecord.from_json({"kind": "nope"})


def test_one_reader_skips_a_torn_last_line_and_names_any_other(tmp_path, scenes):
    path = tmp_path / "t.jsonl"
    record = predict_record(_outputs(scenes[0]), scenes[0], "m")
    append_trace(path, record)
    append_trace(path, record.to_json())
    with path.open("a") as f:
        f.write('{"kind": "predict", "sample_')  # a writer killed mid-line
    with pytest.warns(UserWarning, match=r"t.jsonl:3: skipped a torn last line"):
        lines = read_jsonl(path)
    assert [n for n, _ in lines] == [1, 2] and all("time" in r for _, r in lines)
    with pytest.warns(UserWarning):
        assert [r.sample_id for r in read_records(path)] == [scenes[0]["sample_id"]] * 2
    assert trim_log(path, last_step=0) == 0 and path.read_text().endswith("}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_jsonl(path)) == 2  # the torn line is gone, without a warning
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "predict"}\nnot json\n{"kind": "predict"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a JSON trace record"):
        read_jsonl(bad)
    assert read_jsonl(tmp_path / "absent.jsonl", missing_ok=True) == []


# -- the URL convention --

@pytest.mark.parametrize("given", ["http://127.0.0.1:8000", "http://127.0.0.1:8000/",
                                   "http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/",
                                   " http://127.0.0.1:8000/v1 "])
def test_api_base_takes_what_vla_serve_prints_with_or_without_v1(given):
    assert api_base(given) == "http://127.0.0.1:8000/v1"
    assert server_root(given) == "http://127.0.0.1:8000"


def test_api_base_refuses_what_is_not_a_server_url():
    assert api_base("https://host/prefix/") == "https://host/prefix/v1"
    for bad in ("127.0.0.1:8000", "", "ftp://host", "http://host:1/v1?x=1"):
        with pytest.raises(ValueError):
            api_base(bad)


def test_a_refused_port_is_one_line_naming_what_was_tried(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens
    with pytest.raises(ServerUnreachable) as info:
        served_models(f"http://127.0.0.1:{port}/v1", timeout_s=5)
    message = str(info.value)
    assert message.startswith(f"cannot reach a vla server at http://127.0.0.1:{port}/v1/models: ")
    assert "\n" not in message
    # raised in a closed-loop worker process, it crosses back whole
    assert str(pickle.loads(pickle.dumps(info.value))) == message


def test_cli_endpoint_errors_are_one_line(tmp_path, small_data_dir, tiny_model_dir, capsys):
    from vla.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SystemExit) as info:
        main(["rollout", "--endpoint", f"http://127.0.0.1:{port}/v1", "--model-dir",
              str(tiny_model_dir), "--data", str(small_data_dir), "--out",
              str(tmp_path / "r.jsonl")])
    assert str(info.value).startswith("vla rollout: cannot reach a vla server at "
                                      f"http://127.0.0.1:{port}/v1/models")
    # greedy decoding has one output per sample: asking for 4 is refused before any request
    with pytest.raises(SystemExit, match="vla rollout: greedy decoding .* n=4"):
        main(["rollout", "--endpoint", f"http://127.0.0.1:{port}/v1", "--model-dir",
              str(tiny_model_dir), "--data", str(small_data_dir), "--out",
              str(tmp_path / "r.jsonl"), "--n", "4", "--temperature", "0"])


def test_endpoint_policy_pickles_and_names_its_model(tiny_model_dir):
    from vla.serving.client import EndpointPolicy, VLAClient

    client = VLAClient.for_model_dir("http://127.0.0.1:1", "tiny", tiny_model_dir)
    assert client.url == "http://127.0.0.1:1/v1"
    policy = EndpointPolicy(client, trajectory_decoding="greedy", concurrency=2)
    copy = pickle.loads(pickle.dumps(policy))
    assert isinstance(copy, Policy) and copy.name == "tiny" and copy.client.url == client.url
    with pytest.raises(ValueError, match="top_p"):
        EndpointPolicy(client, top_p=0)


def test_validation_is_open_loop_greedy_outputs_with_eval_traces(tiny_model_dir, scenes,
                                                                 tmp_path):
    from vla.model.generate import TransformersPolicy
    from vla.model.loading import load_model_dir
    from vla.training.validate import VALIDATION_COLUMNS, validate

    policy = TransformersPolicy(load_model_dir(tiny_model_dir), max_reasoning_tokens=12)
    trace = tmp_path / "validation.jsonl"
    out = validate(policy, scenes, trace_path=trace, progress=False)
    assert out["model"]["samples"] == 2 and out["model"]["parse_rate"] == 1.0
    assert set(VALIDATION_COLUMNS) <= set(out["model"])
    assert set(out["references"]) == {"blind-constant", "blind-prior"}
    assert set(out["baselines"]) == {"constant-velocity", "constant-acceleration",
                                     "damped-acceleration"}
    records = read_records(trace)
    assert [r.KIND for r in records] == ["eval", "eval"]
    assert records[0].metrics["parsed"] is True and records[0].model == str(tiny_model_dir)
