#!/usr/bin/env bash
# Every GPU figure of docs/BENCHMARKS.md in one run, each model beside torchvision's in one process:
# inference, and training in fp32 and AMP at 2 and 8 images per step (time, peak memory, operators,
# kernel launches and host synchronisations per step; in fp32 also one step's losses and gradients
# against torchvision's from the same weights), then the shapes demo config.
#
#   tools/benchmark_gpu.sh [OUT_DIR]          # default OUT_DIR: benchmark_gpu/
#
# Each measurement writes OUT_DIR/NAME.json and prints its headline. Environment overrides, for a
# quick check of the script itself on a CPU: DEVICE (cuda), ITERS (30), WARMUP (5), SIZE (800 1067).
set -euo pipefail
out=${1:-benchmark_gpu}
device=${DEVICE:-cuda}
iters=${ITERS:-30}
warmup=${WARMUP:-5}
read -r height width <<<"${SIZE:-800 1067}"
python=${PYTHON:-python}
mkdir -p "$out"

run() {
  local name=$1
  shift
  echo "== $name"
  "$python" tools/benchmark.py --device "$device" --iters "$iters" --warmup "$warmup" "$@" \
    --output "$out/$name.json" | tail -n 1
}

run inference --task inference --compare torchvision --height "$height" --width "$width" --count-ops
for batch in 2 8; do
  run "train_fp32_batch$batch" --task train --compare torchvision --batch-size "$batch" \
    --height "$height" --width "$width" --count-ops --check-losses
  if [ "$device" != cpu ]; then
    run "train_amp_batch$batch" --task train --compare torchvision --batch-size "$batch" \
      --height "$height" --width "$width" --count-ops --amp
  fi
done
run train_shapes --config-file configs/shapes/mask_rcnn_shapes.yaml --task train --batch-size 4 \
  --height 128 --width 128
echo "wrote $out/*.json"
