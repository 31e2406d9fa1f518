"""A real vLLM OpenAI-compatible server on 127.0.0.1 for the tiny model.

On the session's shared ``vllm serve`` (tests/conftest.py: ``vllm_server``): the server
runs as an API server beside its engine process; one chat completion with camera images as
data URIs, checked against transformers (same prompt tokens, same first-token
log-probability); and grammar-constrained sampling (n = 4) whose outputs must all parse.
Stopping the shared server at the end of the session must leave none of its processes
alive; a server that cannot start is started (and fails) on its own.
"""

import httpx
import psutil
import pytest

from vla.serving.parity import hf_forward, query_server, synthetic_camera_images
from vla.serving.vllm_server import ServerConfig, ServerError, VLLMServer

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(vllm_server):
    return vllm_server


def test_server_runs_an_api_server_and_an_engine_process(server):
    pids = server.alive_pids()
    assert len(pids) >= 2, "expected the API server and its engine process"
    assert all(psutil.pid_exists(p) for p in pids)


def test_vllm_server_answers_a_chat_completion_with_images(server, tiny_model_dir):
    assert server.config.host == "127.0.0.1"
    models = httpx.get(f"{server.url}/v1/models", timeout=10).json()
    # the base model; LoRA adapters other tests loaded name it as their parent
    assert [m["id"] for m in models["data"] if m.get("parent") is None] == ["tiny"]
    assert all(m["parent"] == "tiny" for m in models["data"] if m.get("parent") is not None)
    images = synthetic_camera_images(2)
    expected = hf_forward(tiny_model_dir, images)
    reply = query_server(server.url, "tiny", images, max_tokens=8)
    choice = reply["choices"][0]
    assert reply["usage"]["prompt_tokens"] == len(expected.prompt_ids)
    assert reply["prompt_token_ids"] == expected.prompt_ids
    assert reply["usage"]["completion_tokens"] == len(choice["token_ids"]) >= 1
    assert choice["finish_reason"] in ("length", "stop")
    first = choice["token_ids"][0]
    assert choice["logprobs"]["content"][0]["logprob"] == pytest.approx(
        expected.logprobs[first], abs=1e-3)
    assert first == int(expected.logprobs.argmax())


def test_grammar_constrained_samples_all_parse(server, tiny_model_dir):
    from PIL import Image

    from vla.model.constraints import lark_grammar
    from vla.model.loading import grammar_for_dir, load_codec_of
    from vla.model.parser import parse_output
    from vla.model.prompting import messages
    from vla.serving.chat import DATA_URI_PARTS

    grammar = grammar_for_dir(tiny_model_dir, max_reasoning_tokens=40)
    sample = {"camera_names": ["front_left", "front", "front_right"] * 2,
              "frame_times": [-0.5] * 3 + [0.0] * 3,
              "history": [[-(20 - k) * 0.5, 0.0, 0.0, 10.0] for k in range(21)],
              "ego_speed": 10.0, "command": "follow_road"}
    images = [Image.fromarray(a) for a in synthetic_camera_images(6, 96, 160)]
    chat = messages(sample, images, DATA_URI_PARTS)  # each camera one video of 2 frames
    body = {"model": "tiny", "messages": chat, "n": 4, "temperature": 1.0, "max_tokens": 120,
            "skip_special_tokens": False, "structured_outputs": {"grammar": lark_grammar(grammar)}}
    reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=300)
    assert reply.status_code == 200, reply.text[:2000]
    codec = load_codec_of(tiny_model_dir)
    outputs = [c["message"]["content"] for c in reply.json()["choices"]]
    assert len(outputs) == 4
    decisions = [parse_output(text, codec.num_tokens) for text in outputs]
    assert all(len(d.trajectory_ids) == codec.num_tokens for d in decisions)
    assert len({tuple(d.trajectory_ids) for d in decisions}) > 1  # sampling, not one path


def test_server_that_cannot_start_reports_why(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "not_a_model"}')
    server = VLLMServer(ServerConfig(model=broken, startup_timeout_s=240),
                        log_path=tmp_path / "vllm.log")
    with pytest.raises(ServerError, match="exited with code"):
        server.start()
    assert server.alive_pids() == []


def test_config_rejects_a_directory_without_a_model(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        ServerConfig(model=tmp_path)
