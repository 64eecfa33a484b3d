#!/usr/bin/env bash
# The Fashion-MNIST DC and DSA paper-setting rows at IPC 1 (issue 19, item 12) on one GPU, in one call.
#
#   FASHION_MNIST=/path/to/fashion-mnist OUT=/some/folder bash benchmarks/gpu_paper_rows.sh
#
# What it runs: `benchmarks/fashion_mnist.py --profile paper --methods dc dsa --ipc 1 --distill-seeds N`
# (N = $DISTILL_SEEDS, default 2; width 128, 1,000 outer iterations, the papers' evaluation, 20 evaluation
# networks per set, each method with its own random baseline) on the GPU. On this project's 2-core CPU one
# distillation takes about 1 h 40 min (DSA, two threads) to 2 h 40 min (DC); on a card they should take
# minutes (estimate, not yet measured). The runs are kept in $OUT/runs and checkpointed every
# 25 iterations: run the script again with the same OUT to continue an interrupted call.
#
# Writes $OUT/fashion_mnist.{json,md}: a copy of the committed benchmarks/results/fashion_mnist.json with
# the paper rows added (each row names the machine it ran on). Copy it back into benchmarks/results/ to
# commit the rows. FASHION_MNIST is the folder of the four IDX .gz files (30 MB: carry a copy onto a
# machine without network). DEVICE=cpu runs tiny settings, to check the script itself.
source "$(dirname "$0")/gpu_setup.sh"
[ -f "$OUT/fashion_mnist.json" ] || cp benchmarks/results/fashion_mnist.json "$OUT/fashion_mnist.json"

if [ "$DEVICE" = cpu ]; then  # a smoke test of this script, not a measurement
    SIZE=(--set network.width=8 method.iterations=2 evaluation.seeds=2 evaluation.epochs=2 checkpoint.every=1)
else
    SIZE=()
fi
python benchmarks/fashion_mnist.py --root "$FASHION_MNIST" --profile paper --methods dc dsa --ipc 1 \
    --distill-seeds "${DISTILL_SEEDS:-2}" --device "$DEVICE" --runs "$OUT/runs" --resume --out "$OUT" "${SIZE[@]}" 2> >(tee "$OUT/paper_rows.log" >&2)
