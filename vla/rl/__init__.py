"""Post-training with reinforcement learning: the rewards, their audit and the GRPO loop."""
