"""A client for the vLLM OpenAI-compatible endpoint: one Sample in, n Decisions out.

It builds the chat request from ``prompts/`` (images as data URIs in the prompt's
order), attaches the output grammar (vLLM ``structured_outputs``, Lark over token ids),
asks for n samples, and parses each into a Decision. Requests are validated before they
are sent (image count, decodable images, size limits, required fields); sending uses
``httpx`` with a timeout, retries with back-off on connection errors and 5xx answers,
and a semaphore that limits concurrent requests.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from functools import cached_property

import httpx
from PIL import Image

from vla.model.constraints import lark_grammar
from vla.model.expected_entry import check_trajectory_decoding, entry_features_of
from vla.model.parser import Decision, ParseError, parse_output
from vla.model.prompting import messages
from vla.serving.chat import image_data_uri
from vla.trajectory.types import ego_state_of

REQUIRED_FIELDS = ("images", "camera_names", "frame_times", "history", "ego_speed", "command")
MAX_IMAGE_SIDE = 2048


class RequestError(ValueError):
    """The sample cannot make a valid request; nothing was sent."""


@dataclass
class Completion:
    text: str
    decision: Decision | None
    error: ParseError | None
    completion_tokens: int


@dataclass
class ClientResult:
    completions: list[Completion]
    prompt_tokens: int
    seconds: float
    attempts: int
    raw: dict = field(repr=False, default_factory=dict)


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


def validate_sample(sample: dict, images_per_prompt: int) -> list[Image.Image]:
    """The sample's images, or a :class:`RequestError` saying what is wrong."""
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
    return [_as_image(im, f"sample {sid} image {i}") for i, im in enumerate(images)]


@dataclass
class VLAClient:
    """Talks to ``vla serve`` (or any vLLM server of a vla model)."""

    url: str
    model: str
    grammar: object  # vla.model.constraints.OutputGrammar
    codec: object
    images_per_prompt: int = 6
    api_key: str | None = None
    timeout_s: float = 300.0
    retries: int = 3
    concurrency: int = 16
    _semaphore: asyncio.Semaphore | None = field(default=None, repr=False)

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
        images = validate_sample(sample, self.images_per_prompt)
        chat = messages(sample, images, lambda im: {
            "type": "image_url", "image_url": {"url": image_data_uri(im)}})
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

    def parse_reply(self, reply: dict, sample: dict) -> list[Completion]:
        out = []
        ego = ego_state_of(sample)
        for choice in reply["choices"]:
            text = choice["message"]["content"] or ""
            try:
                decision = parse_output(text, self.codec.num_tokens, self.codec, ego)
                error = None
            except ParseError as exc:
                decision, error = None, exc
            out.append(Completion(text, decision, error, len(choice.get("token_ids") or [])))
        return out

    async def decide(self, client: httpx.AsyncClient, sample: dict, **kwargs) -> ClientResult:
        body = self.request_body(sample, **kwargs)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        async with self._semaphore:
            start = time.perf_counter()
            for attempt in range(1, self.retries + 2):
                try:
                    response = await client.post(f"{self.url}/v1/chat/completions", json=body,
                                                 headers=self._headers(), timeout=self.timeout_s)
                    if response.status_code < 500:
                        break
                except (httpx.TransportError, httpx.TimeoutException):
                    if attempt > self.retries:
                        raise
                await asyncio.sleep(min(8.0, 0.5 * 2 ** attempt))
            seconds = time.perf_counter() - start
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"server answered {response.status_code}: {response.text[:500]}",
                request=response.request, response=response)
        reply = response.json()
        return ClientResult(self.parse_reply(reply, sample), reply["usage"]["prompt_tokens"],
                            seconds, attempt, reply)

    def decide_sync(self, sample: dict, **kwargs) -> ClientResult:
        async def run():
            async with httpx.AsyncClient() as client:
                return await self.decide(client, sample, **kwargs)

        return asyncio.run(run())

    @classmethod
    def for_model_dir(cls, url: str, model: str, model_dir, **kwargs) -> VLAClient:
        import json
        from pathlib import Path

        from vla.model.loading import grammar_for_dir, load_codec_of

        meta = json.loads((Path(model_dir) / "vla_model.json").read_text())
        kwargs.setdefault("images_per_prompt", meta.get("images_per_prompt", 6))
        return cls(url, model, grammar_for_dir(model_dir), load_codec_of(model_dir), **kwargs)
