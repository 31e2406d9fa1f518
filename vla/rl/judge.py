"""An optional reasoning judge: any OpenAI-compatible chat endpoint scores the reasoning 0-10.

Off by default (the rubric in :mod:`vla.rl.rewards` needs no model). The judge sees the
labelled decision and cause, the model's reasoning and its meta-action, and answers one
integer; the request asks for ``structured_outputs`` ``choice`` 0..10, which vLLM enforces
(other servers may ignore it: any reply is searched for the first integer in range). A
reply without one is an error that names the endpoint and the reply, not a silent 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from vla.rl.rewards import Reward

PROMPT = (
    "You grade the reasoning of a driving model. The correct decision is "
    "'{label_decision}' because: {label_reasoning}\n"
    "The model wrote: {reasoning}\nand decided '{decision}'.\n"
    "Does the model's reasoning name the right cause and support its decision? "
    "Answer with one integer from 0 (wrong) to 10 (right and well supported)."
)


@dataclass(frozen=True)
class JudgeConfig:
    url: str                     # base URL of the endpoint, e.g. http://127.0.0.1:8000
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"judge url must start with http:// or https://, got {self.url!r}")


def judge_reward(config: JudgeConfig, decision, sample: dict) -> Reward:
    """The judge's score scaled to [0, 1], with the raw reply in the components."""
    prompt = PROMPT.format(
        label_decision=f"{sample['decision_lon']}, {sample['decision_lat']}",
        label_reasoning=sample["reasoning"], reasoning=decision.reasoning,
        decision=f"{decision.meta_action.longitudinal}, {decision.meta_action.lateral}")
    body = {"model": config.model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 4, "temperature": 0.0,
            "structured_outputs": {"choice": [str(i) for i in range(11)]}}
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    from vla.serving.urls import api_base

    response = httpx.post(f"{api_base(config.url)}/chat/completions", json=body, headers=headers,
                          timeout=config.timeout_s)
    if response.status_code != 200:
        raise RuntimeError(f"judge at {config.url} answered {response.status_code}: "
                           f"{response.text[:300]}")
    reply = response.json()["choices"][0]["message"]["content"] or ""
    found = [int(m) for m in re.findall(r"\d+", reply) if 0 <= int(m) <= 10]
    if not found:
        raise RuntimeError(f"judge at {config.url} gave no score from 0 to 10: {reply!r}")
    return Reward(found[0] / 10.0, {"score": found[0], "reply": reply})
