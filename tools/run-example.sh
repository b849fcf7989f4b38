#!/usr/bin/env bash
# Sets up, builds and runs Graft's main job as far as it exists: transfer
# learning on the CPU with the real ImageNet-pretrained SqueezeNet 1.1 and the
# real flowers12 photos (a new head on a frozen backbone, against the same head
# on a randomly initialised backbone). Arguments go to the example
# (--data DIR --weights DIR --epochs N --seed S).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup-debian.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRAFT_CUDA=AUTO
cmake --build "$BUILD_DIR" --target finetune_example
"$BUILD_DIR/tools/finetune_example" "$@"
