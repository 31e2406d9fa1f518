"""transformers generation under the output grammar, parsed into a Decision."""

from __future__ import annotations

import time
from dataclasses import dataclass

from vla.model.constraints import GrammarLogitsProcessor, OutputGrammar
from vla.model.expected_entry import (
    ExpectedEntryLogitsProcessor,
    check_trajectory_decoding,
    entry_features_of,
)
from vla.model.loading import LoadedModel
from vla.model.parser import Decision, ParseError, parse_output
from vla.model.prompting import chat_prompt
from vla.trajectory.types import ego_state_of


@dataclass
class Generation:
    text: str
    decision: Decision | None
    error: ParseError | None
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    token_ids: list[int]
    margins: list[float] | None = None  # top-1 minus top-2 logit at each step, if asked


def grammar_for(loaded: LoadedModel, max_reasoning_tokens: int = 96) -> OutputGrammar:
    return OutputGrammar.for_model(loaded.tokenizer, loaded.codec,
                                   loaded.model.config.text_config.vocab_size,
                                   max_reasoning_tokens)


def prompt_inputs(processor, sample: dict):
    """The model inputs of ``sample``'s prompt (text and images), up to the assistant's turn."""
    images = [im.convert("RGB") for im in sample["images"]]
    text = chat_prompt(processor, sample, images)
    return processor(text=[text], images=images, return_tensors="pt")


def generate_decision(loaded: LoadedModel, sample: dict, constrained: bool = True,
                      do_sample: bool = False, temperature: float = 1.0, seed: int = 0,
                      max_reasoning_tokens: int = 96, with_margins: bool = False,
                      trajectory_decoding: str = "greedy") -> Generation:
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
    return Generation(text, decision, error, prompt_len, len(new), seconds, new, margins)
