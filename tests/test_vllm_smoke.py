"""A real vLLM OpenAI-compatible server on 127.0.0.1, one chat completion with images.

Starts ``vllm serve`` for the tiny checkpoint, sends two camera images as data URIs,
checks the reply against transformers (same prompt tokens, same first-token
log-probability), stops the server by PID and checks that no engine process is left.
"""

import httpx
import psutil
import pytest

from vla.serving.vllm_server import ServerConfig, ServerError, VLLMServer
from vla.stack_check import hf_forward, query_server, synthetic_camera_images


def test_vllm_server_answers_a_chat_completion_with_images(tiny_model_dir, tmp_path):
    images = synthetic_camera_images(2)
    expected = hf_forward(tiny_model_dir, images)
    server = VLLMServer(ServerConfig(model=tiny_model_dir, served_model_name="tiny",
                                     images_per_prompt=2), log_path=tmp_path / "vllm.log")
    with server:
        assert server.config.host == "127.0.0.1"
        models = httpx.get(f"{server.url}/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]
        reply = query_server(server.url, "tiny", images, max_tokens=8)
        pids = server.alive_pids()
        assert len(pids) >= 2, "expected the API server and its engine process"
    choice = reply["choices"][0]
    assert reply["usage"]["prompt_tokens"] == len(expected.prompt_ids)
    assert reply["prompt_token_ids"] == expected.prompt_ids
    assert reply["usage"]["completion_tokens"] == len(choice["token_ids"]) >= 1
    assert choice["finish_reason"] in ("length", "stop")
    first = choice["token_ids"][0]
    assert choice["logprobs"]["content"][0]["logprob"] == pytest.approx(
        expected.logprobs[first], abs=1e-3)
    assert first == int(expected.logprobs.argmax())
    assert server.alive_pids() == []
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in pids)


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
