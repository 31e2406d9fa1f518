#!/usr/bin/env bash
# Perception pretraining on more simulator scenes, then the demo's driving SFT: stage 1 (full
# fine-tuning of the tiny model, vision tower included) on a separate 240-episode build (other
# seeds, so none of the demo's validation or test episodes), stage 2 (LoRA) on the demo's data,
# then open-loop evaluation on the demo's 102 stratified test samples with the image
# diagnostics. Needs a finished `make demo` (its data set and initial model). About 17 min on
# 2 cores (data 2 min, stage 1 10.5 min, stage 2 1 min, evaluation 3 min).
#   scripts/pretrain_more_scenes.sh [DEMO_DIR] [OUT_DIR] [EPISODES] [STAGE1_STEPS]
set -euo pipefail
demo=${1:-runs/demo}
out=${2:-runs/pretrain_more_scenes}
episodes=${3:-240}
steps=${4:-600}
venv=${VENV:-.venv}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1
for path in "$demo/data" "$demo/model"; do
  [[ -e $path ]] || { echo "missing $path: run make demo first" >&2; exit 2; }
done
mkdir -p "$out"
[[ -e $out/data ]] || "$venv/bin/vla" data build --episodes "$episodes" --seed 1 --workers 2 \
    --out "$out/data"
launch=("$venv/bin/accelerate" launch --config_file train/accelerate/cpu.yaml)
"${launch[@]}" train/stage1_inject.py --config train/configs/tiny_stage1.yaml \
    model="$demo/model" data="$out/data" out="$out/stage1" eval_samples=0 max_steps="$steps" \
    save_steps=200
"${launch[@]}" train/stage2_sft.py --config train/configs/tiny_stage2.yaml \
    model="$out/stage1/model" data="$demo/data" out="$out/stage2" eval_samples=0
for split in validation test; do
  "$venv/bin/vla" eval open-loop --model "$out/stage1/model" --adapter "$out/stage2/adapter" \
      --data "$demo/data" --split "$split" --limit 102 --k 0 --no-shortcut \
      --json > "$out/open_loop_$split.json"
done
"$venv/bin/python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| split | samples | model lon | images blanked | images shuffled | blind-learned | blind-prior |")
print("|---|---|---|---|---|---|---|")
for split in ("validation", "test"):
    res = json.loads((out / f"open_loop_{split}.json").read_text())
    for name, part in (("all", res), ("events", res["subsets"]["events"])):
        diag, refs = part["image_diagnostics"], part["references"]
        print(f"| {split}, {name} | {part['samples'] if 'samples' in part else res['samples']} | "
              f"{part['model']['accuracy_lon']:.3f} | {diag['images_blanked']['accuracy_lon']:.3f} | "
              f"{diag['images_shuffled']['accuracy_lon']:.3f} | "
              f"{refs['blind-learned']['accuracy_lon']:.3f} | {refs['blind-prior']['accuracy_lon']:.3f} |")
PY
