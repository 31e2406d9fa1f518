"""Expected-entry trajectory decoding inside vLLM, asked for per request.

``vla serve`` starts vLLM with ``--logits-processors`` naming :class:`ExpectedEntryProcessor`.
A request that carries ``vllm_xargs: {"trajectory_decoding": "expected"}`` (and temperature
0) gets its trajectory tokens chosen by :mod:`vla.model.expected_entry`; every other request is
untouched. vLLM applies the structured-output mask before its logits processors, so the rule
sees the grammar's mask exactly as transformers ``generate`` does after
:class:`~vla.model.constraints.GrammarLogitsProcessor`.
"""

from __future__ import annotations

from pathlib import Path

from vllm.v1.sample.logits_processor import AdapterLogitsProcessor

from vla.model.expected_entry import ExpectedEntryLogitsProcessor, check_trajectory_decoding

XARG = "trajectory_decoding"


def requested_decoding(params) -> str:
    extra = getattr(params, "extra_args", None) or {}
    return str(extra.get(XARG, "greedy"))


def _rule_for(model_dir: Path) -> ExpectedEntryLogitsProcessor | None:
    """The rule for the vla model in ``model_dir``; None when its codec has no entry space."""
    from transformers import AutoTokenizer

    from vla.model.constraints import GrammarIds
    from vla.model.loading import load_codec_of

    codec = load_codec_of(model_dir)
    features = codec.entry_features()
    if features is None:
        return None
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return ExpectedEntryLogitsProcessor(
        features, GrammarIds.from_tokenizer(tokenizer, codec.vocab_size).traj_ids)


class ExpectedEntryProcessor(AdapterLogitsProcessor):
    """vLLM logits processor: the expected-entry rule on the requests that ask for it."""

    def __init__(self, vllm_config, device, is_pin_memory):
        super().__init__(vllm_config, device, is_pin_memory)
        from vla.model.build import CODEC_DIR

        model_dir = Path(vllm_config.model_config.model)
        self.rule = _rule_for(model_dir) if (model_dir / CODEC_DIR).is_dir() else None

    @classmethod
    def validate_params(cls, sampling_params):
        check_trajectory_decoding(requested_decoding(sampling_params),
                                  greedy=sampling_params.temperature == 0)

    def is_argmax_invariant(self) -> bool:
        return False

    def new_req_logits_processor(self, params):
        if requested_decoding(params) != "expected":
            return None
        if self.rule is None:
            raise ValueError("trajectory_decoding=expected: this model's trajectory codec "
                             "has no codebook entries to average")
        rule = self.rule

        def apply(output_ids, logits):
            return rule.apply(logits[None])[0]
        return apply
