"""Constrained decoding of the output grammar, at the token-id level.

A small state machine over token ids enforces, whatever the weights:

* the output opens with ``<|cot_start|>``; inside the reasoning no trajectory token,
  no other delimiter and no end-of-turn may appear, and after ``max_reasoning_tokens``
  the reasoning is closed;
* then ``<|meta_action_start|>``, one of the closed set of meta-actions (spelled with the
  tokenizer's own tokens, walked through a trie), ``<|meta_action_end|>``;
* then ``<|traj_future_start|>``, exactly N trajectory tokens, ``<|traj_future_end|>``,
  and the end-of-turn token.

:class:`GrammarLogitsProcessor` applies it to transformers ``generate``; the same
constraint is exported as a Lark grammar over token ids for vLLM's structured outputs
(:func:`lark_grammar`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla.model.parser import meta_action_strings
from vla.model.special_tokens import (
    COT_END,
    COT_START,
    IM_END,
    META_ACTION_END,
    META_ACTION_START,
    OUTPUT_DELIMITERS,
    QWEN_SPECIAL_TOKENS,
    TRAJ_FUTURE_END,
    TRAJ_FUTURE_START,
)
from vla.model.trajectory_tokens import trajectory_token

START, REASONING, META_OPEN, META, TRAJ_OPEN, TRAJ, CLOSE, DONE = range(8)


@dataclass
class GrammarIds:
    """Token ids the grammar needs, read from a tokenizer."""

    cot_start: int
    cot_end: int
    meta_start: int
    meta_end: int
    traj_start: int
    traj_end: int
    end_of_turn: int
    traj_ids: np.ndarray  # codec id -> token id
    forbidden_in_reasoning: np.ndarray  # token ids
    meta_sequences: list[list[int]]
    vocab_size: int

    @classmethod
    def from_tokenizer(cls, tokenizer, num_codec_ids: int, vocab_size: int | None = None):
        ids = tokenizer.convert_tokens_to_ids
        traj = np.array([ids(trajectory_token(i)) for i in range(num_codec_ids)])
        unk = tokenizer.unk_token_id
        if (traj < 0).any() or (unk is not None and (traj == unk).any()):
            raise ValueError("the tokenizer lacks some trajectory tokens: re-run "
                             "`vla model init` or `vla model inject` with this codec")
        specials = [ids(t) for t in (*QWEN_SPECIAL_TOKENS, *OUTPUT_DELIMITERS) if t != COT_END]
        # embedding rows past the tokenizer (an exact-shape model's published vocabulary)
        # decode to nothing: the reasoning never writes them
        phantom = np.arange(len(tokenizer), max(vocab_size or 0, len(tokenizer)))
        forbidden = np.unique(np.concatenate([traj, np.array(specials), phantom]))
        meta = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in meta_action_strings()]
        return cls(ids(COT_START), ids(COT_END), ids(META_ACTION_START), ids(META_ACTION_END),
                   ids(TRAJ_FUTURE_START), ids(TRAJ_FUTURE_END), ids(IM_END), traj, forbidden,
                   meta, vocab_size or len(tokenizer))


class OutputGrammar:
    """The state machine; a state is (phase, count, meta prefix)."""

    def __init__(self, ids: GrammarIds, num_tokens: int, max_reasoning_tokens: int = 96):
        if num_tokens < 1:
            raise ValueError("num_tokens must be >= 1")
        self.ids = ids
        self.n = num_tokens
        self.max_reasoning = max_reasoning_tokens
        self._traj_mask = np.zeros(ids.vocab_size, bool)
        self._traj_mask[ids.traj_ids] = True
        self._reasoning_mask = np.ones(ids.vocab_size, bool)
        self._reasoning_mask[ids.forbidden_in_reasoning] = False
        self._masks: dict[tuple, np.ndarray] = {}

    @classmethod
    def for_model(cls, tokenizer, codec, vocab_size: int | None = None,
                  max_reasoning_tokens: int = 96) -> OutputGrammar:
        """The grammar of a model: its tokenizer, its trajectory codec, its vocabulary size."""
        ids = GrammarIds.from_tokenizer(tokenizer, codec.vocab_size, vocab_size)
        return cls(ids, codec.num_tokens, max_reasoning_tokens)

    def initial(self):
        return (START, 0, ())

    @property
    def max_new_tokens(self) -> int:
        """Tokens a complete output can take: reasoning, delimiters, meta-action, trajectory."""
        return self.max_reasoning + max(len(s) for s in self.ids.meta_sequences) + self.n + 8

    def _key(self, state) -> tuple:
        """The part of a state the mask depends on (masks are cached by it)."""
        phase, count, prefix = state
        if phase == REASONING:
            return (phase, min(count, 1), count >= self.max_reasoning)
        if phase == META:
            return (phase, prefix)
        if phase == TRAJ:
            return (phase, count < self.n)
        return (phase,)

    def allowed(self, state) -> np.ndarray:
        """Boolean mask of the tokens allowed next (read-only; shared between calls)."""
        key = self._key(state)
        mask = self._masks.get(key)
        if mask is None:
            mask = self._build_mask(state)
            mask.flags.writeable = False
            self._masks[key] = mask
        return mask

    def _build_mask(self, state) -> np.ndarray:
        phase, count, prefix = state
        mask = np.zeros(self.ids.vocab_size, bool)
        i = self.ids
        if phase == START:
            mask[i.cot_start] = True
        elif phase == REASONING:
            if count >= self.max_reasoning:
                mask[i.cot_end] = True
            else:
                mask |= self._reasoning_mask
                mask[i.cot_end] = count > 0
        elif phase == META_OPEN:
            mask[i.meta_start] = True
        elif phase == META:
            for seq in i.meta_sequences:
                if tuple(seq[:len(prefix)]) == prefix:
                    if len(seq) > len(prefix):
                        mask[seq[len(prefix)]] = True
                    else:
                        mask[i.meta_end] = True
        elif phase == TRAJ_OPEN:
            mask[i.traj_start] = True
        elif phase == TRAJ:
            if count < self.n:
                mask |= self._traj_mask
            else:
                mask[i.traj_end] = True
        elif phase == CLOSE:
            mask[i.end_of_turn] = True
        else:
            mask[i.end_of_turn] = True
        return mask

    def advance(self, state, token: int):
        phase, count, prefix = state
        if phase == DONE:
            return state  # a finished row: generate pads it, whatever the token
        if not self.allowed(state)[token]:
            raise ValueError(f"token {token} is not allowed in phase {phase}")
        i = self.ids
        if phase == START:
            return (REASONING, 0, ())
        if phase == REASONING:
            return (META_OPEN, 0, ()) if token == i.cot_end else (REASONING, count + 1, ())
        if phase == META_OPEN:
            return (META, 0, ())
        if phase == META:
            return (TRAJ_OPEN, 0, ()) if token == i.meta_end else (META, 0, (*prefix, token))
        if phase == TRAJ_OPEN:
            return (TRAJ, 0, ())
        if phase == TRAJ:
            return (CLOSE, 0, ()) if token == i.traj_end else (TRAJ, count + 1, ())
        return (DONE, 0, ())


class GrammarLogitsProcessor:
    """transformers ``LogitsProcessor``: masks every token the grammar forbids.

    The state of each row is advanced from the tokens generated since the prompt
    (``prompt_length``), incrementally.
    """

    def __init__(self, grammar: OutputGrammar, prompt_length: int):
        self.grammar = grammar
        self.prompt_length = prompt_length
        self._states: dict[int, tuple] = {}
        self._blocked: dict[int, object] = {}

    def __call__(self, input_ids, scores):
        import torch

        generated = input_ids[:, self.prompt_length:]
        for row in range(scores.shape[0]):
            seen, state = self._states.get(row, (0, self.grammar.initial()))
            for token in generated[row, seen:].tolist():
                state = self.grammar.advance(state, token)
            self._states[row] = (generated.shape[1], state)
            allowed = self.grammar.allowed(state)
            blocked = self._blocked.get(id(allowed))
            if blocked is None:  # one tensor per cached mask, built once
                blocked = torch.tensor(~allowed[:scores.shape[1]], device=scores.device)
                self._blocked[id(allowed)] = blocked
            scores[row, blocked] = -float("inf")
        return scores


def lark_grammar(grammar: OutputGrammar) -> str:
    """The same constraint as a Lark grammar over token ids (vLLM ``structured_outputs``)."""
    i = grammar.ids
    reasoning_mask = grammar.allowed((REASONING, 1, ())).copy()
    reasoning_mask[i.cot_end] = False  # the grammar closes the reasoning itself
    allowed = np.flatnonzero(reasoning_mask)
    ranges = _ranges(allowed)
    reasoning_token = " | ".join(f"<[{a}-{b}]>" if a != b else f"<[{a}]>" for a, b in ranges)
    meta = " | ".join(" ".join(f"<[{t}]>" for t in seq) for seq in i.meta_sequences)
    traj_lo, traj_hi = int(i.traj_ids.min()), int(i.traj_ids.max())
    if traj_hi - traj_lo + 1 != len(i.traj_ids):
        raise ValueError("trajectory token ids must be contiguous for the grammar")
    traj = " ".join(["traj_token"] * grammar.n)
    return "\n".join([
        f"start: <[{i.cot_start}]> reasoning <[{i.cot_end}]> <[{i.meta_start}]> meta "
        f"<[{i.meta_end}]> <[{i.traj_start}]> trajectory <[{i.traj_end}]>",
        f"reasoning: reasoning_token~1..{grammar.max_reasoning}",
        f"reasoning_token: {reasoning_token}",
        f"meta: {meta}",
        f"trajectory: {traj}",
        f"traj_token: <[{traj_lo}-{traj_hi}]>",
    ])


def _ranges(values: np.ndarray) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in values.tolist():
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out
