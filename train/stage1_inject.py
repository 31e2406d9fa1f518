"""Stage 1, action-modality injection / full fine-tuning.

accelerate launch --config_file train/accelerate/cpu.yaml train/stage1_inject.py \\
    --config train/configs/tiny_stage1.yaml [key=value ...]
"""

from vla.training.cli import main

if __name__ == "__main__":
    main(stage="inject")
