"""Stage 2, chain-of-causation SFT: a LoRA adapter on the stage-1 base.

accelerate launch --config_file train/accelerate/cpu.yaml train/stage2_sft.py \\
    --config train/configs/tiny_stage2.yaml [key=value ...]
"""

from vla.training.cli import main

if __name__ == "__main__":
    main(stage="sft")
