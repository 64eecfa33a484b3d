# Sourced by the GPU scripts (gpu_suite.sh, gpu_paper_rows.sh): strict mode, the checkout's root as the
# working folder, FASHION_MNIST required, OUT (default benchmarks/results/gpu) and DEVICE (default cuda)
# set, and mmdd installed from the checkout (--no-deps) when the machine's Python cannot import it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${FASHION_MNIST:?set FASHION_MNIST to the folder with the Fashion-MNIST IDX files}"
OUT="${OUT:-benchmarks/results/gpu}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$OUT"

if ! python -c "import mmdd.core" 2>/dev/null; then
    pip install --quiet --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1
fi
