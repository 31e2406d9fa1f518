"""LoRA on the language model only (peft).

Targets the attention projections of the language model by name. The vision tower's
attention uses ``qkv`` / ``proj`` (in Qwen2.5-VL and Qwen3-VL alike) and is untouched;
Qwen2.5-VL's vision MLP shares names with the language model's (``gate_proj`` ...), which
is why MLP targets would need a regex that vLLM ignores anyway — we keep to the attention
projections, which vLLM serves.
"""

from __future__ import annotations

LANGUAGE_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


def lora_config(rank: int = 8, alpha: int = 16, dropout: float = 0.0,
                init_random: bool = False):
    from peft import LoraConfig

    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                      target_modules=list(LANGUAGE_ATTENTION),
                      init_lora_weights=not init_random, task_type="CAUSAL_LM")


def random_adapter(model_dir, out, rank: int = 8, seed: int = 0, scale: float = 1.0):
    """A LoRA adapter with random non-zero weights (for serving and parity tests)."""
    import torch
    from peft import get_peft_model

    from vla.model.arch import load_pretrained

    torch.manual_seed(seed)
    model = load_pretrained(model_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, lora_config(rank, init_random=True))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.mul_(scale)
    peft_model.save_pretrained(out)
    return out
