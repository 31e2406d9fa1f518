"""Throughput of vLLM batched rollouts against transformers ``generate``, and a load run.

Both engines sample the same prompts under the same output grammar (the Lark grammar
in vLLM, the logits processor in transformers), n completions per prompt:

* vLLM: every prompt in flight at once with ``n`` samples each, up to ``concurrency``
  requests at a time;
* transformers: ``num_return_sequences=n`` and several prompts per ``generate`` call
  (left padding), with the batch size that is fastest on this machine.

Then ``load_requests`` single-sample requests against the server, counting errors and
sampling the server's resident memory (all its processes) every 0.2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass

import httpx
import psutil


@dataclass
class EngineResult:
    engine: str
    setting: str
    samples: int
    tokens: int
    seconds: float
    parsed: int

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def bench_vllm(client, samples, n: int, concurrency: int) -> EngineResult:
    from vla.serving.client import EndpointPolicy

    policy = EndpointPolicy(client, concurrency=concurrency)
    start = time.perf_counter()
    completions = policy.decide(samples, n, 1.0)
    seconds = time.perf_counter() - start
    return EngineResult("vLLM", f"n={n}, concurrency={concurrency}", len(completions),
                        sum(c.completion_tokens for c in completions), seconds,
                        sum(c.decision is not None for c in completions))


def bench_transformers(loaded, samples, n: int, prompts_per_call: int) -> EngineResult:
    import torch
    from transformers import LogitsProcessorList

    from vla.model.constraints import GrammarLogitsProcessor
    from vla.model.generate import grammar_for
    from vla.model.parser import ParseError, parse_output
    from vla.model.prompting import chat_prompt
    from vla.model.visual_inputs import processor_inputs, visual_inputs

    grammar = grammar_for(loaded)
    tok = loaded.tokenizer
    tok.padding_side = "left"
    total_samples = total_tokens = parsed = 0
    start = time.perf_counter()
    for i in range(0, len(samples), prompts_per_call):
        chunk = samples[i:i + prompts_per_call]
        texts, media = [], []
        for sample in chunk:
            ims = [im.convert("RGB") for im in sample["images"]]
            texts.append(chat_prompt(loaded.processor, sample, ims))
            media.append(visual_inputs(sample, ims))
        inputs = processor_inputs(loaded.processor, texts, media, padding=True)
        prompt_len = inputs["input_ids"].shape[1]
        processors = LogitsProcessorList([GrammarLogitsProcessor(grammar, prompt_len)])
        with torch.no_grad():
            out = loaded.model.generate(**inputs, max_new_tokens=grammar.max_new_tokens,
                                        do_sample=True,
                                        temperature=1.0, top_p=None, top_k=None,
                                        num_return_sequences=n, logits_processor=processors,
                                        eos_token_id=grammar.ids.end_of_turn,
                                        pad_token_id=tok.pad_token_id)
        for row in out[:, prompt_len:]:
            ids = row.tolist()
            if grammar.ids.end_of_turn in ids:
                ids = ids[:ids.index(grammar.ids.end_of_turn) + 1]
            total_tokens += len(ids)
            total_samples += 1
            try:
                parse_output(tok.decode(ids, skip_special_tokens=False), grammar.n)
                parsed += 1
            except ParseError:
                pass
    seconds = time.perf_counter() - start
    return EngineResult("transformers", f"n={n}, {prompts_per_call} prompt(s) per call",
                        total_samples, total_tokens, seconds, parsed)


def load_run(client, samples, requests: int, concurrency: int, server) -> dict:
    """``requests`` single-sample requests; errors, wall time and the server's peak RSS."""
    peak = {"rss": 0}
    stop = threading.Event()

    def sample_memory():
        while not stop.is_set():
            total = 0
            for pid in server.alive_pids():
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += psutil.Process(pid).memory_info().rss
            peak["rss"] = max(peak["rss"], total)
            time.sleep(0.2)

    watcher = threading.Thread(target=sample_memory, daemon=True)
    watcher.start()
    errors = unparsed = 0

    async def run():
        nonlocal errors, unparsed
        limit = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient() as http:
            async def one(k):
                nonlocal errors, unparsed
                try:
                    async with limit:
                        r = await client.request(http, samples[k % len(samples)], n=1,
                                                 temperature=1.0)
                    unparsed += sum(c.decision is None for c in r)
                except Exception:  # every failure counts, whatever its kind
                    errors += 1
            await asyncio.gather(*(one(k) for k in range(requests)))

    start = time.perf_counter()
    asyncio.run(run())
    seconds = time.perf_counter() - start
    stop.set()
    watcher.join()
    return {"requests": requests, "errors": errors, "unparsed": unparsed,
            "seconds": round(seconds, 1), "requests_per_s": round(requests / seconds, 2),
            "server_peak_rss_gib": round(peak["rss"] / 2**30, 2)}
