#!/usr/bin/env bash
# The training ablation of issue "a model that sees": the demo's recipe and steps with every
# camera image black, in training and at test time, beside the camera model, on the same
# stratified test samples. Needs a finished `make demo` (its data set, base model and adapter).
#   scripts/ablation_black_images.sh [DEMO_DIR] [OUT_DIR]
set -euo pipefail
demo=${1:-runs/demo}
out=${2:-runs/ablation_black}
venv=${VENV:-.venv}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} HF_HUB_OFFLINE=1
for path in "$demo/data" "$demo/model" "$demo/stage1/model" "$demo/stage2/adapter"; do
  [[ -e $path ]] || { echo "missing $path: run make demo first" >&2; exit 2; }
done
mkdir -p "$out"
launch=("$venv/bin/accelerate" launch --config_file train/accelerate/cpu.yaml)
"${launch[@]}" train/stage1_inject.py --config train/configs/tiny_stage1.yaml \
    model="$demo/model" data="$demo/data" out="$out/stage1" eval_samples=0 blank_images=true
"${launch[@]}" train/stage2_sft.py --config train/configs/tiny_stage2.yaml \
    model="$out/stage1/model" data="$demo/data" out="$out/stage2" eval_samples=0 \
    blank_images=true
# the same 102 test samples as the demo's open loop (stratified draw, seed 0), greedy only;
# the blind-trained model's honest row is its `images_blanked` one (black at test time too)
for run in camera black; do
  if [[ $run == camera ]]; then base=$demo/stage1/model; adapter=$demo/stage2/adapter
  else base=$out/stage1/model; adapter=$out/stage2/adapter; fi
  "$venv/bin/vla" eval open-loop --model "$base" --adapter "$adapter" --data "$demo/data" \
      --split test --limit 102 --k 0 --no-shortcut --json > "$out/open_loop_$run.json"
done
"$venv/bin/python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
camera = json.loads((out / "open_loop_camera.json").read_text())
black = json.loads((out / "open_loop_black.json").read_text())
rows = [("camera model", camera, "model"), ("camera model, images blanked", camera,
         "images_blanked"), ("black-trained model (black at test)", black, "images_blanked")]
print("| model | events lon | events lat | free lon | all lon |")
print("|---|---|---|---|---|")
for name, res, key in rows:
    def acc(part, axis):
        row = part["model"] if key == "model" else part["image_diagnostics"][key]
        return f"{row[f'accuracy_{axis}']:.3f}"
    subsets = res["subsets"]
    print(f"| {name} | {acc(subsets['events'], 'lon')} | {acc(subsets['events'], 'lat')} | "
          f"{acc(subsets['free'], 'lon')} | {acc(res, 'lon')} |")
PY
