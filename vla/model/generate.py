"""transformers generation under the output grammar, parsed into a Decision.

:func:`generate_decision` is the engine (one output for one sample);
:class:`TransformersPolicy` is the :class:`vla.policy.Policy` over it that every caller uses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from vla.model.constraints import GrammarLogitsProcessor, OutputGrammar
from vla.model.expected_entry import (
    ExpectedEntryLogitsProcessor,
    check_trajectory_decoding,
    entry_features_of,
)
from vla.model.loading import LoadedModel
from vla.model.parser import ParseError, parse_output
from vla.model.prompting import chat_prompt
from vla.model.visual_inputs import processor_inputs, visual_inputs
from vla.policy import PolicyOutput, check_request
from vla.trajectory.types import ego_state_of


def grammar_for(loaded: LoadedModel, max_reasoning_tokens: int = 96) -> OutputGrammar:
    return OutputGrammar.for_model(loaded.tokenizer, loaded.codec,
                                   loaded.model.config.text_config.vocab_size,
                                   max_reasoning_tokens)


def prompt_inputs(processor, sample: dict):
    """The model inputs of ``sample``'s prompt (text, and the cameras as videos or images:
    :mod:`vla.model.visual_inputs`), up to the assistant's turn."""
    images = [im.convert("RGB") for im in sample["images"]]
    text = chat_prompt(processor, sample, images)
    return processor_inputs(processor, [text], [visual_inputs(sample, images)])


def generate_decision(loaded: LoadedModel, sample: dict, constrained: bool = True,
                      do_sample: bool = False, temperature: float = 1.0, seed: int = 0,
                      max_reasoning_tokens: int = 96, with_margins: bool = False,
                      trajectory_decoding: str = "greedy") -> PolicyOutput:
    """Generate one output for ``sample`` and parse it (the error is kept, not raised).

    ``trajectory_decoding="expected"`` writes each trajectory token as the codebook entry
    nearest the model's expected entry (:mod:`vla.model.expected_entry`); it needs the
    grammar and greedy decoding of the rest.
    """
    import torch
    from transformers import LogitsProcessorList

    check_trajectory_decoding(trajectory_decoding, greedy=not do_sample, constrained=constrained)
    expected = trajectory_decoding == "expected"
    inputs = prompt_inputs(loaded.processor, sample).to(loaded.model.device)
    prompt_len = inputs["input_ids"].shape[1]
    grammar = grammar_for(loaded, max_reasoning_tokens)
    processors = LogitsProcessorList(
        [GrammarLogitsProcessor(grammar, prompt_len)] if constrained else [])
    if expected:
        processors.append(ExpectedEntryLogitsProcessor(entry_features_of(loaded.codec),
                                                       grammar.ids.traj_ids))
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        out = loaded.model.generate(**inputs, max_new_tokens=grammar.max_new_tokens,
                                    do_sample=do_sample,
                                    temperature=temperature if do_sample else None,
                                    top_p=None, top_k=None, logits_processor=processors,
                                    eos_token_id=grammar.ids.end_of_turn,
                                    pad_token_id=loaded.tokenizer.pad_token_id,
                                    return_dict_in_generate=True, output_scores=with_margins)
    seconds = time.perf_counter() - start
    margins = None
    if with_margins:
        margins = []
        for step in out.scores:
            top = torch.topk(step[0].float(), 2).values
            margins.append(float(top[0] - top[1]) if torch.isfinite(top[1]) else float("inf"))
    new = out.sequences[0, prompt_len:].tolist()
    text = loaded.tokenizer.decode(new, skip_special_tokens=False)
    try:
        decision = parse_output(text, loaded.codec.num_tokens, loaded.codec,
                                ego_state_of(sample))
        error = None
    except ParseError as exc:
        decision, error = None, exc
    return PolicyOutput(text=text, decision=decision, error=error, prompt_tokens=prompt_len,
                        completion_tokens=len(new), token_ids=new, seconds=seconds,
                        margins=margins)


class TransformersPolicy:
    """A vla model through transformers (:func:`generate_decision`), as a
    :class:`vla.policy.Policy`.

    Greedy (``temperature == 0``): one output, its trajectory tokens chosen by
    ``trajectory_decoding``. Sampled: the ``j``-th of a sample's ``n`` outputs is drawn with
    the torch seed ``seed + j`` (so a sample's outputs do not depend on the other samples of
    the call), its trajectory tokens sampled like the rest. ``constrained=False`` drops the
    output grammar (for debugging). Samples are generated one after another.
    """

    def __init__(self, loaded: LoadedModel, name: str | None = None,
                 max_reasoning_tokens: int = 96, trajectory_decoding: str = "greedy",
                 constrained: bool = True, seed: int = 0):
        check_trajectory_decoding(trajectory_decoding, greedy=True, constrained=constrained)
        if max_reasoning_tokens < 1:
            raise ValueError(f"max_reasoning_tokens must be >= 1, got {max_reasoning_tokens}")
        self.loaded = loaded
        self.name = name or str(loaded.path)
        self.max_reasoning_tokens = max_reasoning_tokens
        self.trajectory_decoding = trajectory_decoding
        self.constrained = constrained
        self.seed = seed

    @property
    def codec(self):
        return self.loaded.codec

    def decide(self, samples: Sequence[dict], n: int = 1,
               temperature: float = 0.0) -> list[PolicyOutput]:
        check_request(samples, n, temperature)
        out = []
        for sample in samples:
            if temperature == 0:
                out.append(generate_decision(
                    self.loaded, sample, constrained=self.constrained,
                    max_reasoning_tokens=self.max_reasoning_tokens,
                    trajectory_decoding=self.trajectory_decoding))
                continue
            out += [generate_decision(self.loaded, sample, constrained=self.constrained,
                                      do_sample=True, temperature=temperature, seed=self.seed + j,
                                      max_reasoning_tokens=self.max_reasoning_tokens)
                    for j in range(n)]
        return out
