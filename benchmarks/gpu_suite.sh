#!/usr/bin/env bash
# The speed benchmark's GPU rows in one call (about 5–8 minutes on one H200-class card).
#
#   FASHION_MNIST=/path/to/fashion-mnist OUT=/some/folder bash benchmarks/gpu_suite.sh
#
# Needs: torch with CUDA, and mmdd importable (the script installs the checkout with --no-deps when
# it is not). FASHION_MNIST is the folder of the four IDX .gz files (30 MB: carry a copy onto a
# machine without network). Writes $OUT/speed.{json,md} (default benchmarks/results/gpu) and prints the table.
# DEVICE=cpu runs the same suite on the CPU with tiny settings, to check the script itself.
source "$(dirname "$0")/gpu_setup.sh"
python - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF

if [ "$DEVICE" = cpu ]; then  # a smoke test of this script, not a measurement
    SIZE=(--iters 1 --eval-epochs 1 --expert-steps 1 --configs dm_ipc10 eval_ipc10 --modes allocator batched_seeds)
else
    SIZE=(--iters 5 --eval-epochs 30 --expert-steps 50
          --configs mtt_ipc10_s30_exact mtt_ipc10_s30_constant_memory mtt_ipc1_s50_exact dm_ipc10 eval_ipc10 expert_step
          --modes allocator host_data compiled batched_seeds tf32 bf16)
fi
# on a GPU the allocator mode is the eager baseline: the host allocator does not touch device memory
python benchmarks/speed.py --device "$DEVICE" --root "$FASHION_MNIST" --threads 4 --out "$OUT" "${SIZE[@]}" \
    2> >(tee "$OUT/speed.log" >&2)
