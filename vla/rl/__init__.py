"""Post-training with reinforcement learning: rewards (and, to come, the GRPO loop)."""
