"""A client for the vLLM OpenAI-compatible endpoint: one Sample in, n PolicyOutputs out.

:class:`VLAClient` builds the chat request from ``prompts/`` (each camera's frames as one
video, or still images for a 1-frame rig, as data URIs in the prompt's order:
:mod:`vla.serving.chat`), attaches the output
grammar (vLLM ``structured_outputs``, Lark over token ids), asks for n samples, and parses
each into a Decision. Requests are validated before they are sent (image count, the same
number of frames for every camera, the server's video frame rate, decodable images, size
limits, required fields); sending uses
``httpx`` with a timeout and retries with back-off on connection errors and 5xx answers.
:class:`EndpointPolicy` is the :class:`vla.policy.Policy` over it: several samples' requests
in flight at once, at most ``concurrency``. The server URL is taken in any form
:func:`vla.serving.urls.api_base` accepts (what ``vla serve`` prints).
"""

from __future__ import annotations

import asyncio
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import httpx
from PIL import Image

from vla.model.constraints import lark_grammar
from vla.model.expected_entry import check_trajectory_decoding, entry_features_of
from vla.model.parser import ParseError, parse_output
from vla.model.prompting import messages
from vla.model.visual_inputs import (
    default_images_per_prompt,
    default_video_fps,
    videos_fps,
    visual_inputs,
)
from vla.policy import PolicyOutput, check_request
from vla.serving.chat import DATA_URI_PARTS
from vla.serving.urls import ServerUnreachable, api_base
from vla.trajectory.types import ego_state_of

REQUIRED_FIELDS = ("images", "camera_names", "frame_times", "history", "ego_speed", "command")
MAX_IMAGE_SIDE = 2048


class RequestError(ValueError):
    """The sample cannot make a valid request; nothing was sent."""


def _as_image(image, where: str) -> Image.Image:
    if isinstance(image, Image.Image):
        out = image
    elif isinstance(image, dict) and image.get("bytes") is not None:
        image = image["bytes"]
        out = None
    else:
        out = None
    if out is None:
        if not isinstance(image, bytes | bytearray):
            raise RequestError(f"{where}: expected a PIL image or image bytes, got "
                               f"{type(image).__name__}")
        try:
            out = Image.open(io.BytesIO(image))
            if max(out.size) > MAX_IMAGE_SIDE:  # read from the header, before decoding
                raise RequestError(f"{where}: image is {out.size[0]}x{out.size[1]} pixels, "
                                   f"larger than {MAX_IMAGE_SIDE} on a side")
            out.load()
        except Image.DecompressionBombError as exc:
            raise RequestError(f"{where}: image is larger than the decoder allows ({exc})"
                               ) from None
        except RequestError:
            raise
        except Exception as exc:
            raise RequestError(f"{where}: bytes are not a readable image ({exc})") from None
    if max(out.size) > MAX_IMAGE_SIDE:
        raise RequestError(f"{where}: image is {out.size[0]}x{out.size[1]} pixels, larger than "
                           f"{MAX_IMAGE_SIDE} on a side")
    return out.convert("RGB")


def validate_sample(sample: dict, images_per_prompt: int,
                    video_fps: float | None = None) -> list[Image.Image]:
    """The sample's images, or a :class:`RequestError` saying what is wrong.

    ``images_per_prompt`` is the rig's cameras x frames; every camera must have the same
    number of frames, in time order (:func:`vla.model.visual_inputs.visual_inputs`), and
    its video (if any) the frame rate ``video_fps`` the server reads videos at."""
    sid = sample.get("sample_id", "?")
    missing = [f for f in REQUIRED_FIELDS if f not in sample or sample[f] is None]
    if missing:
        raise RequestError(f"sample {sid}: missing fields {missing}")
    images = sample["images"]
    if len(images) != images_per_prompt:
        raise RequestError(f"sample {sid}: {len(images)} images, the model expects "
                           f"{images_per_prompt} (cameras x frames)")
    if not (len(sample["camera_names"]) == len(sample["frame_times"]) == len(images)):
        raise RequestError(f"sample {sid}: {len(images)} images but "
                           f"{len(sample['camera_names'])} camera names and "
                           f"{len(sample['frame_times'])} frame times")
    try:
        media = visual_inputs(sample, images)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    try:
        fps = videos_fps(media)
    except ValueError as exc:
        raise RequestError(f"sample {sid}: {exc}") from None
    if fps is not None and video_fps is not None and not math.isclose(fps, video_fps,
                                                                       rel_tol=1e-6):
        raise RequestError(f"sample {sid}: its frames make videos at {fps:g} frames per second "
                           f"({1 / fps:g} s apart), the server reads videos at {video_fps:g}")
    return [_as_image(im, f"sample {sid} image {i}") for i, im in enumerate(images)]


@dataclass
class VLAClient:
    """Talks to ``vla serve`` (or any vLLM server of a vla model): ``url`` as
    :func:`vla.serving.urls.api_base` accepts it (kept in that normalised form)."""

    url: str
    model: str
    grammar: object  # vla.model.constraints.OutputGrammar
    codec: object
    images_per_prompt: int | None = None  # cameras x frames; None: the default rig's
    video_fps: float | None = None  # the server's (ServerConfig.video_fps); None: the default
    api_key: str | None = None
    timeout_s: float = 300.0
    retries: int = 3

    def __post_init__(self) -> None:
        self.url = api_base(self.url)
        if self.images_per_prompt is None:
            self.images_per_prompt = default_images_per_prompt()
        if self.video_fps is None:
            self.video_fps = default_video_fps()
        if self.images_per_prompt < 1:
            raise ValueError(f"images_per_prompt must be >= 1, got {self.images_per_prompt}")
        if self.retries < 0 or self.timeout_s <= 0:
            raise ValueError(f"retries must be >= 0 and timeout_s > 0, got {self.retries} "
                             f"and {self.timeout_s}")

    def request_body(self, sample: dict, n: int = 1, temperature: float = 1.0,
                     top_p: float = 1.0, max_tokens: int = 160, seed: int | None = None,
                     constrained: bool = True, trajectory_decoding: str = "greedy") -> dict:
        """The chat-completions body; ``trajectory_decoding="expected"`` asks the server for
        expected-entry trajectory tokens (:mod:`vla.serving.logits`), greedy and constrained."""
        try:
            check_trajectory_decoding(trajectory_decoding, temperature == 0, constrained)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        if trajectory_decoding == "expected":
            entry_features_of(self.codec)  # a codec without entries is refused here
        images = validate_sample(sample, self.images_per_prompt, self.video_fps)
        chat = messages(sample, images, DATA_URI_PARTS)
        body = {"model": self.model, "messages": chat, "n": n, "temperature": temperature,
                "top_p": top_p, "max_tokens": max_tokens, "skip_special_tokens": False,
                "return_token_ids": True}
        if seed is not None:
            body["seed"] = seed
        if constrained:
            body["structured_outputs"] = {"grammar": self.lark}
        if trajectory_decoding != "greedy":
            body["vllm_xargs"] = {"trajectory_decoding": trajectory_decoding}
        return body

    @cached_property
    def lark(self) -> str:
        """The output grammar in vLLM's form, built once per client."""
        return lark_grammar(self.grammar)

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def parse_reply(self, reply: dict, sample: dict, seconds: float = 0.0) -> list[PolicyOutput]:
        """One output per choice of a chat-completions reply (the request's time in each)."""
        out = []
        ego = ego_state_of(sample)
        prompt_tokens = int((reply.get("usage") or {}).get("prompt_tokens") or 0)
        for choice in reply["choices"]:
            text = choice["message"]["content"] or ""
            try:
                decision = parse_output(text, self.codec.num_tokens, self.codec, ego)
                error = None
            except ParseError as exc:
                decision, error = None, exc
            ids = list(choice.get("token_ids") or [])
            out.append(PolicyOutput(text=text, decision=decision, error=error,
                                    prompt_tokens=prompt_tokens, completion_tokens=len(ids),
                                    token_ids=ids, seconds=seconds))
        return out

    async def request(self, http: httpx.AsyncClient, sample: dict,
                      **kwargs) -> list[PolicyOutput]:
        """Send one sample's request (``kwargs``: :meth:`request_body`'s) and parse the reply.

        Connection errors and 5xx answers are retried ``retries`` times with back-off; a
        server still not reached raises :class:`vla.serving.urls.ServerUnreachable`, another
        error status ``httpx.HTTPStatusError``, a bad sample :class:`RequestError`."""
        body = self.request_body(sample, **kwargs)
        target = f"{self.url}/chat/completions"
        start = time.perf_counter()
        for attempt in range(1, self.retries + 2):
            try:
                response = await http.post(target, json=body, headers=self._headers(),
                                           timeout=self.timeout_s)
                if response.status_code < 500:
                    break
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if attempt > self.retries:
                    raise ServerUnreachable(target, " ".join(str(exc).split())
                                            or type(exc).__name__) from None
            await asyncio.sleep(min(8.0, 0.5 * 2 ** attempt))
        seconds = time.perf_counter() - start
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"server answered {response.status_code}: {response.text[:500]}",
                request=response.request, response=response)
        return self.parse_reply(response.json(), sample, seconds)

    def decide_sync(self, sample: dict, **kwargs) -> list[PolicyOutput]:
        """:meth:`request` from synchronous code (its own event loop and connection)."""
        async def run():
            async with httpx.AsyncClient() as http:
                return await self.request(http, sample, **kwargs)

        return asyncio.run(run())

    @classmethod
    def for_model_dir(cls, url: str, model: str, model_dir, **kwargs) -> VLAClient:
        import json
        from pathlib import Path

        from vla.model.loading import grammar_for_dir, load_codec_of

        meta = json.loads((Path(model_dir) / "vla_model.json").read_text())
        kwargs.setdefault("images_per_prompt", meta.get("images_per_prompt"))
        return cls(url, model, grammar_for_dir(model_dir), load_codec_of(model_dir), **kwargs)


class EndpointPolicy:
    """A vla model served by vLLM, through a :class:`VLAClient`, as a
    :class:`vla.policy.Policy`.

    ``decide`` sends one request per sample (asking for its ``n`` outputs), at most
    ``concurrency`` in flight at once (the server batches them), and returns the outputs in
    the samples' order. Greedy requests ask for ``trajectory_decoding``; sampled ones use
    ``top_p``. Requests carry no seed: vLLM 0.32's CPU worker fails ("CPU Generator does not
    use offset") when a seeded request is in a batch whose prefill is split into chunks, which
    several concurrent multi-image prompts cause. The policy holds no event-loop state (each
    ``decide`` makes its own), so it pickles into worker processes as it is.
    """

    runs_in_workers = True  # closed loop may drive its episodes in worker processes
    thread_safe = True  # concurrent requests are batched by the server

    def __init__(self, client: VLAClient, trajectory_decoding: str = "greedy",
                 top_p: float = 1.0, max_tokens: int = 160, concurrency: int = 16,
                 constrained: bool = True, name: str | None = None):
        check_trajectory_decoding(trajectory_decoding, greedy=True, constrained=constrained)
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if max_tokens < 1 or concurrency < 1:
            raise ValueError(f"max_tokens and concurrency must be >= 1, got {max_tokens} and "
                             f"{concurrency}")
        self.client = client
        self.trajectory_decoding = trajectory_decoding
        self.top_p, self.max_tokens, self.concurrency = top_p, max_tokens, concurrency
        self.constrained = constrained
        self._name = name

    @property
    def name(self) -> str:
        """The name given, else the served model (or adapter) the requests ask for."""
        return self._name or self.client.model

    @property
    def codec(self):
        return self.client.codec

    def _kwargs(self, n: int, temperature: float) -> dict:
        kwargs = {"n": n, "temperature": temperature, "top_p": self.top_p,
                  "max_tokens": self.max_tokens, "constrained": self.constrained}
        if temperature == 0:
            kwargs["trajectory_decoding"] = self.trajectory_decoding
        return kwargs

    async def decide_async(self, samples: Sequence[dict], n: int = 1,
                           temperature: float = 0.0) -> list[PolicyOutput]:
        """:meth:`decide` inside a running event loop."""
        check_request(samples, n, temperature)
        limit = asyncio.Semaphore(self.concurrency)
        kwargs = self._kwargs(n, temperature)
        async with httpx.AsyncClient() as http:
            async def one(sample):
                async with limit:
                    return await self.client.request(http, sample, **kwargs)

            per_sample = await asyncio.gather(*(one(s) for s in samples))
        return [o for outputs in per_sample for o in outputs]

    def decide(self, samples: Sequence[dict], n: int = 1,
               temperature: float = 0.0) -> list[PolicyOutput]:
        return asyncio.run(self.decide_async(samples, n, temperature))
