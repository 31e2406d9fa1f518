"""The model: presets, a locally trained tokenizer, and Qwen2.5-VL construction."""
