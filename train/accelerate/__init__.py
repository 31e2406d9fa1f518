"""accelerate and DeepSpeed configs (package data: vla.assets.accelerate)."""
