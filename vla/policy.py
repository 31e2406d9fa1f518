"""One way to ask for decisions: the :class:`Policy` protocol and its :class:`PolicyOutput`.

Everything that needs decisions (``vla predict``, stage validation, open- and closed-loop
evaluation, rollouts, GRPO) takes a ``Policy``; what answers is interchangeable:

- a vla model through transformers, with or without an adapter
  (:class:`vla.model.generate.TransformersPolicy`);
- a vla model served by vLLM, through :class:`vla.serving.client.VLAClient`
  (:class:`vla.serving.client.EndpointPolicy`);
- the reference rows (:mod:`vla.reference`): blind policies that write a decision without
  looking, and kinematic ones (constant velocity, damped prior, the expert's future) that
  write only a trajectory.

``decide(samples, n, temperature)`` returns ``n`` outputs per sample, sample-major: the
outputs of ``samples[i]`` are ``out[i * n:(i + 1) * n]``. ``temperature == 0`` asks for the
greedy decision (``n`` must then be 1). An output that does not parse is returned with
``decision=None`` and its ``error``: a policy never raises for a bad model output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class PolicyOutput:
    """One decision of a policy on one sample.

    ``text`` is the model's output (None for a policy that writes none); ``decision`` the
    parsed :class:`vla.model.parser.Decision` (None when the text did not parse, or for a
    policy that writes only a trajectory); ``error`` the
    :class:`vla.model.parser.ParseError` of an unparsable text; ``trajectory`` the plan
    ``(T, 3)`` in metres in the ego frame at t0 (the decision's, or a kinematic policy's
    own; None when there is none). ``prompt_tokens`` / ``completion_tokens`` and
    ``token_ids`` (the completion's) are those of a model's output (0 / empty otherwise);
    ``seconds`` its generation time; ``margins`` the top-1 minus top-2 logit at each step
    when the transformers engine was asked for them (None otherwise).
    """

    text: str | None = None
    decision: object | None = None  # vla.model.parser.Decision
    error: object | None = None  # vla.model.parser.ParseError
    trajectory: np.ndarray | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    token_ids: list[int] = field(default_factory=list)
    seconds: float = 0.0
    margins: list[float] | None = None

    def __post_init__(self) -> None:
        if self.trajectory is None and self.decision is not None:
            self.trajectory = getattr(self.decision, "trajectory", None)

    @property
    def parsed(self) -> bool:
        """The output is a decision (text that parsed, or a policy's own decision)."""
        return self.decision is not None

    @property
    def meta_action(self):
        """The written meta-action (:class:`vla.meta_action.MetaAction`), or None."""
        return None if self.decision is None else self.decision.meta_action


@runtime_checkable
class Policy(Protocol):
    """Anything that decides: ``name`` for tables and traces, ``decide`` for outputs."""

    name: str

    def decide(self, samples: Sequence[dict], n: int = 1,
               temperature: float = 0.0) -> list[PolicyOutput]: ...


def check_request(samples: Sequence[dict], n: int, temperature: float) -> None:
    """The arguments every ``decide`` accepts; a ``ValueError`` saying which is wrong."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0 and n != 1:
        raise ValueError(f"greedy decoding (temperature 0) gives one output, asked for n={n}")
    if isinstance(samples, dict):
        raise TypeError("decide takes a sequence of samples; wrap one sample in a list")


def one(policy: Policy, sample: dict) -> PolicyOutput:
    """The greedy output of ``policy`` on one sample."""
    return policy.decide([sample], 1, 0.0)[0]


def threads_for(policy: Policy, concurrency: int) -> int:
    """How many samples to put to ``policy`` at once from threads: ``concurrency`` for a
    policy that says it is ``thread_safe`` (an endpoint, whose server batches concurrent
    requests; the reference policies), 1 for any other (a transformers model: its sampling
    seeds torch's global generator, so concurrent calls would race)."""
    return max(1, concurrency) if getattr(policy, "thread_safe", False) else 1


def map_over_samples(policy: Policy, fn: Callable, items: Iterable,
                     concurrency: int) -> Iterator:
    """``fn(item)`` for every item, in order, in :func:`threads_for` threads: the one way
    open-loop evaluation, validation and rollouts put many samples to a policy at once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads_for(policy, concurrency)) as pool:
        yield from pool.map(fn, items)
