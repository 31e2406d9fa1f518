"""Serving: the client, rollouts, parity with transformers and bad input, on a real server.

On the session's shared ``vllm serve`` of the tiny model (tests/conftest.py), with a random
LoRA adapter loaded into it as ``adapter``.
"""

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from vla.serving.client import EndpointPolicy, RequestError, VLAClient

pytestmark = pytest.mark.server

NEAR_TIE = 1e-3  # logit gap below which float32 rounding may pick either token


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from vla.data.build import BuildConfig, build_dataset
    from vla.sim.observation import SampleConfig

    out = tmp_path_factory.mktemp("serving") / "data"
    build_dataset(BuildConfig(recipe="highway", episodes=3, seed=4,
                              samples=SampleConfig(topdown=False)), out, progress=False)
    return out


@pytest.fixture(scope="module")
def samples(data_dir):
    from vla.data.build import load_dataset_dir

    dataset, _ = load_dataset_dir(data_dir)
    return [dataset["test"][i] for i in range(3)]


@pytest.fixture(scope="module")
def adapter_dir(lora_adapter_dir):
    return lora_adapter_dir


@pytest.fixture(scope="module")
def server(vllm_server, load_lora_adapter, adapter_dir):
    load_lora_adapter("adapter", adapter_dir)
    return vllm_server


def _client(server, tiny_model_dir, model="tiny"):
    return VLAClient.for_model_dir(server.url, model, tiny_model_dir, retries=1)


def _agreeing_tokens(tokens: list[int], expected) -> int:
    """How many leading tokens vLLM and transformers share; the engines may only part at a
    near-tie of a random-weight model's logits."""
    diff = next((i for i, (a, b) in enumerate(zip(tokens, expected.token_ids, strict=False))
                 if a != b), None)
    if diff is None:
        assert tokens == expected.token_ids
        return len(tokens)
    assert expected.margins[diff] < NEAR_TIE, (diff, expected.margins[diff])
    return diff


@pytest.mark.parametrize("served", ["tiny", "adapter"])
def test_greedy_vllm_equals_transformers_token_for_token(server, tiny_model_dir, adapter_dir,
                                                         samples, served):
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir

    loaded = load_model_dir(tiny_model_dir)
    if served == "adapter":
        from peft import PeftModel

        loaded.model = PeftModel.from_pretrained(loaded.model, adapter_dir).eval()
    client = _client(server, tiny_model_dir, served)
    compared = 0
    for sample in samples:
        expected = generate_decision(loaded, sample, with_margins=True)
        got = client.decide_sync(sample, n=1, temperature=0.0, max_tokens=200)[0]
        assert got.decision is not None
        compared += _agreeing_tokens(got.token_ids, expected)
    assert compared >= 150


def test_expected_entry_decoding_on_the_server_equals_transformers(server, tiny_model_dir,
                                                                   samples):
    """The same rule runs in vLLM (a logits processor asked for per request) and in
    transformers; its trajectory tokens differ from greedy's, so the server really applied it."""
    from vla.model.generate import generate_decision
    from vla.model.loading import load_model_dir

    loaded = load_model_dir(tiny_model_dir)
    client = _client(server, tiny_model_dir)
    compared, differs_from_greedy = 0, 0
    for sample in samples:
        expected = generate_decision(loaded, sample, with_margins=True,
                                     trajectory_decoding="expected")
        got = client.decide_sync(sample, n=1, temperature=0.0, max_tokens=200,
                                 trajectory_decoding="expected")[0]
        greedy = client.decide_sync(sample, n=1, temperature=0.0, max_tokens=200)[0]
        assert got.decision is not None
        differs_from_greedy += (got.decision.trajectory_ids != greedy.decision.trajectory_ids)
        compared += _agreeing_tokens(got.token_ids, expected)
    assert compared >= 150
    assert differs_from_greedy >= 1


def test_expected_entry_decoding_with_sampling_is_refused(server, tiny_model_dir, samples):
    client = _client(server, tiny_model_dir)
    with pytest.raises(RequestError, match="temperature 0"):
        client.request_body(samples[0], temperature=1.0, trajectory_decoding="expected")
    body = client.request_body(samples[0], temperature=0.0, trajectory_decoding="expected")
    assert body["vllm_xargs"] == {"trajectory_decoding": "expected"}
    response = httpx.post(f"{server.url}/v1/chat/completions",
                          json={**body, "temperature": 1.0}, timeout=120)
    assert response.status_code == 400 and "temperature 0" in response.text, response.text[:500]


def test_client_samples_n_decisions_that_parse(server, tiny_model_dir, samples):
    outputs = EndpointPolicy(_client(server, tiny_model_dir)).decide(samples[:2], 4, 1.0)
    assert len(outputs) == 8
    assert all(c.decision is not None and c.error is None for c in outputs)
    assert all(c.decision.trajectory.shape == (60, 3) for c in outputs)
    assert all(c.prompt_tokens > 100 and c.completion_tokens == len(c.token_ids) > 10
               and c.seconds > 0 for c in outputs)


def test_a_camera_reaches_vllm_as_one_video_of_its_frames_at_their_rate(tiny_model_dir,
                                                                        samples):
    """The client's video part decodes in vLLM, at the frame rate the server is started
    with, to the camera's frames, lossless; vLLM's processor then gives the same pixels and
    the same seconds per temporal patch as transformers' (vla.model.visual_inputs). A sample
    whose frames make another rate is refused."""
    from transformers import AutoProcessor
    from transformers.video_utils import VideoMetadata
    from vllm.multimodal.media.connector import MediaConnector

    from vla.model.visual_inputs import processor_inputs, visual_inputs
    from vla.serving.vllm_server import ServerConfig, VLLMServer

    sample = samples[0]
    client = VLAClient.for_model_dir("http://127.0.0.1:1", "tiny", tiny_model_dir,
                                     images_per_prompt=len(sample["images"]))
    body = client.request_body(sample)
    videos = [p for p in body["messages"][1]["content"] if p["type"] == "video_url"]
    media = visual_inputs(sample, [im.convert("RGB") for im in sample["images"]])
    assert len(videos) == len(media) == len(set(sample["camera_names"]))
    command = VLLMServer(ServerConfig(model=tiny_model_dir)).command()
    media_io = json.loads(command[command.index("--media-io-kwargs") + 1])
    gap = sample["frame_times"][-1] - sample["frame_times"][0]
    assert media_io == {"video": {"fps": 1 / gap}} and client.video_fps == 1 / gap
    connector = MediaConnector(media_io_kwargs=media_io)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    text = ["<|vision_start|><|video_pad|><|vision_end|>"]
    for part, video in zip(videos, media, strict=True):
        frames, metadata = connector.fetch_video(part["video_url"]["url"]).media
        assert np.array_equal(frames, np.stack([np.asarray(f) for f in video.frames]))
        assert metadata["fps"] == video.fps and metadata["frames_indices"] == [0, 1]
        served = processor(text=text, videos=[frames], return_tensors="pt", video_metadata=[
            VideoMetadata(**{k: v for k, v in metadata.items() if k != "do_sample_frames"})])
        ours = processor_inputs(processor, text, [[video]])
        assert np.array_equal(served["pixel_values_videos"], ours["pixel_values_videos"])
        assert served["second_per_grid_ts"].tolist() == ours["second_per_grid_ts"].tolist()
    slower = {**sample, "frame_times": [2 * t for t in sample["frame_times"]]}
    with pytest.raises(RequestError, match="1 frames per second .* reads videos at 2"):
        client.request_body(slower)


def _png(size, mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("case", ["wrong_image_count", "not_an_image", "huge_image",
                                  "missing_field"])
def test_bad_input_is_refused_by_the_client_and_by_the_server(server, tiny_model_dir, samples,
                                                              case):
    client = _client(server, tiny_model_dir)
    sample = dict(samples[0])
    good = client.request_body(samples[0], max_tokens=8, constrained=False)
    body = json.loads(json.dumps(good))
    parts = body["messages"][1]["content"]
    video_parts = [p for p in parts if p["type"] == "video_url"]
    head, frames = video_parts[0]["video_url"]["url"].split(",", 1)
    later_frames = frames.split(",")[1:]
    if case == "wrong_image_count":
        sample["images"] = list(sample["images"]) + [sample["images"][0]]
        # one video per camera: more videos than the server takes (half its images)
        parts += [dict(video_parts[0])] * server.config.images_per_prompt
        message = f"{len(sample['images'])} images"
    elif case == "not_an_image":
        sample["images"] = [b"definitely not a png"] + list(sample["images"][1:])
        video_parts[0]["video_url"]["url"] = ",".join(
            [head, base64.b64encode(b"definitely not a png").decode(), *later_frames])
        message = "not a readable image"
    elif case == "huge_image":
        huge = _png((20000, 20000), mode="1")
        sample["images"] = [huge] + list(sample["images"][1:])
        video_parts[0]["video_url"]["url"] = ",".join(
            [head, base64.b64encode(huge).decode(), *later_frames])
        message = "larger than"
    else:
        del sample["history"]
        del body["messages"]
        message = "missing fields"
    with pytest.raises(RequestError, match=message):
        client.request_body(sample)
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert 400 <= response.status_code < 500, response.text[:500]
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    ok = client.decide_sync(samples[1], n=1, temperature=0.0, max_tokens=200)
    assert ok[0].decision is not None


def test_rollouts_write_traces_and_resume(server, tiny_model_dir, data_dir, tmp_path):
    from vla.data.build import load_dataset_dir
    from vla.serving.rollout import run_rollouts
    from vla.traces import read_traces

    dataset, _ = load_dataset_dir(data_dir)
    out = tmp_path / "rollouts.jsonl"
    policy = EndpointPolicy(_client(server, tiny_model_dir))
    first = run_rollouts(policy, dataset["test"], n=2, out=out, limit=2, progress=False)
    assert first == {"samples": 2, "completions": 4, "parsed": 4, "errors": 0, "skipped": 0}
    records = read_traces(out)
    assert len(records) == 4 and all(r["kind"] == "rollout" and r["parsed"] for r in records)
    assert all(r["derived_meta_action"] and np.isfinite(r["ade_m"]) for r in records)
    with out.open("a") as f:
        f.write('{"kind": "rollout", "sample_id": "torn')  # a run killed mid-write
    again = run_rollouts(policy, dataset["test"], n=2, out=out, limit=3, progress=False)
    assert again["skipped"] == 2 and again["samples"] == 1
    assert len(read_traces(out)) == 6


def test_open_loop_through_the_endpoint(server, tiny_model_dir, samples):
    from vla.evaluation.open_loop import evaluate_open_loop
    from vla.policy_factory import make_policy

    # the URL as `vla serve` prints it, the served model the first the server lists
    policy = make_policy(model_dir=tiny_model_dir, endpoint=f"{server.url}/v1/")
    assert policy.name == "tiny"
    result = evaluate_open_loop(policy, samples[:2], 10.0, k=2, shortcut=False,
                                progress=False, concurrency=2)
    assert result["samples"] == 2 and result["model"]["parsed"] == 1.0
    assert "min_ade_2" in result["model"] and "shortcut" not in result


def test_closed_loop_episode_driven_by_the_served_model(server, tiny_model_dir, tmp_path):
    """The tiny model drives a short episode through the endpoint; every decision is traced."""
    from vla.evaluation import closed_loop as cl
    from vla.evaluation.scenarios import ScenarioEntry, ScenarioSet

    sset = ScenarioSet("t", (ScenarioEntry("lead_brake", traffic=6, seeds=(1016164991,)),),
                       duration_s=10.0)
    planner = cl.model_planner(EndpointPolicy(_client(server, tiny_model_dir)))
    result = cl.evaluate_closed_loop([planner], cl.ClosedLoopConfig(sset), episodes=1, seed=0,
                                     trace_path=tmp_path / "t.jsonl", progress=False)
    model = result["per_episode"]["model"][0]
    assert model["decisions"] > 0 and model["parse_rate"] == 1.0
    assert 0.0 <= model["pdms_like"] <= 1.0 and model["collision"] in (0, 1)
    records = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    decisions = [r for r in records if r["kind"] == "closed_loop" and r["planner"] == "model"]
    assert len(decisions) == model["decisions"]
    assert all(r["parsed"] and r["raw_output"] for r in decisions)
    assert all(set(r["expert_meta_action"]) == {"longitudinal", "lateral"} for r in decisions)
    flags = [r["decision_correct_lon"] for r in decisions]
    assert all(flag is None or isinstance(flag, bool) for flag in flags)
    # the episode's accuracy: the mean over its decisions with a meta-action (one episode,
    # so over every decision record of the model); null when none had one
    correct = [flag for flag in flags if flag is not None]
    if correct:
        assert model["decision_accuracy_lon"] == pytest.approx(np.mean(correct), abs=1e-4)
    else:
        assert model["decision_accuracy_lon"] is None


def test_rollout_cli_takes_the_url_vla_serve_prints(server, tiny_model_dir, data_dir,
                                                    tmp_path):
    from vla.cli import main
    from vla.traces import read_records

    out = tmp_path / "rollouts.jsonl"
    assert main(["rollout", "--endpoint", f"{server.url}/v1", "--model-dir",
                 str(tiny_model_dir), "--data", str(data_dir), "--n", "1", "--limit", "1",
                 "--out", str(out)]) == 0
    (record,) = read_records(out)
    assert record.KIND == "rollout" and record.model == "tiny" and record.parsed
