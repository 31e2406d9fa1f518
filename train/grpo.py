"""GRPO with rewards that tie the reasoning to the action; rollouts from the vLLM endpoint.

accelerate launch --config_file train/accelerate/cpu.yaml train/grpo.py \\
    --config train/configs/tiny_grpo.yaml [key=value ...]
"""

from vla.rl.cli import main

if __name__ == "__main__":
    main()
