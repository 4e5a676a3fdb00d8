#!/usr/bin/env bash
# Checks the CUDA kernels of dawin-kernels without a GPU (called by .ci/run):
#  1. installs NVRTC and ptxas from the Python package index (pinned below) into target/;
#  2. compiles every kernels/*.cu with NVRTC through the library's own code path
#     (`cargo run -p dawin-kernels --example gen_ptx`) and fails when the result differs from
#     the PTX shipped in crates/dawin-kernels/ptx/ (so the shipped PTX always matches the sources);
#  3. assembles every shipped PTX file with ptxas for sm_80 and sm_90, prints registers, stack and
#     spills per kernel, and fails on an assembly error or on spills in the merge and forward kernels;
#  4. runs the kernels on the CPU through a host emulation of the CUDA built-ins
#     (crates/dawin-kernels/emulation/, C++20 with address and UB sanitizers) against
#     independent references: indexing, tails, alignment dispatch and warp reductions.
#
# requires: python3 with pip; network access to PyPI on the first run (cached in target/).
# Environment: DAWIN_CUDA_TOOLS=<dir> uses the nvidia/ packages already installed in <dir> (e.g. a
# venv's site-packages) instead of installing them into target/cuda-tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# NVRTC 12.4 writes PTX ISA 8.4, which drivers >= R550 load; a newer NVRTC would raise the
# driver the shipped PTX needs (see crates/dawin-kernels/README.md). Keep in step with
# SHIPPED_NVRTC in crates/dawin-kernels/src/source.rs.
NVRTC_PKG="nvidia-cuda-nvrtc-cu12==12.4.127"
NVCC_PKG="nvidia-cuda-nvcc-cu12==12.4.131"
ARCHS="sm_80 sm_90"

if [ -n "${DAWIN_CUDA_TOOLS:-}" ]; then
    TOOLS="$DAWIN_CUDA_TOOLS"
else
    TOOLS="$PWD/target/cuda-tools"
    STAMP="$TOOLS/.installed"
fi
if [ -z "${DAWIN_CUDA_TOOLS:-}" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" != "$NVRTC_PKG $NVCC_PKG" ]; then
    echo "-- installing $NVRTC_PKG $NVCC_PKG into $TOOLS"
    rm -rf "$TOOLS"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$TOOLS" "$NVRTC_PKG" "$NVCC_PKG"
    echo "$NVRTC_PKG $NVCC_PKG" > "$STAMP"
fi
NVRTC_LIB="$TOOLS/nvidia/cuda_nvrtc/lib"
PTXAS="$TOOLS/nvidia/cuda_nvcc/bin/ptxas"
test -e "$NVRTC_LIB/libnvrtc.so.12" || { echo "libnvrtc.so.12 missing in $NVRTC_LIB"; exit 1; }
test -x "$PTXAS" || { echo "ptxas missing: $PTXAS"; exit 1; }
"$PTXAS" --version | tail -n 1

echo "-- NVRTC: kernels/*.cu -> PTX (library code path), compared with the shipped PTX"
GEN="$(mktemp -d)"
trap 'rm -rf "$GEN"' EXIT
LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    cargo run --quiet -p dawin-kernels --example gen_ptx -- "$GEN"
SHIPPED=crates/dawin-kernels/ptx
status=0
for f in "$GEN"/*.ptx; do
    name="$(basename "$f")"
    if ! diff -q "$SHIPPED/$name" "$f" >/dev/null 2>&1; then
        echo "FAIL: $SHIPPED/$name does not match the PTX NVRTC makes from the sources:"
        diff -u "$SHIPPED/$name" "$f" | head -n 40 || true
        status=1
    fi
done
for f in "$SHIPPED"/*.ptx; do
    test -e "$GEN/$(basename "$f")" || { echo "FAIL: $f has no kernel source"; status=1; }
done
if [ "$status" -ne 0 ]; then
    echo "Regenerate with: LD_LIBRARY_PATH=$NVRTC_LIB cargo run -p dawin-kernels --example gen_ptx"
    exit 1
fi
echo "shipped PTX matches the sources"

echo "-- ptxas: registers and spills per kernel"
python3 scripts/check_kernels.py --ptxas "$PTXAS" --archs $ARCHS \
    --no-spills merge.ptx gemm.ptx attention.ptx norm.ptx embed.ptx -- "$SHIPPED"/*.ptx

echo "-- host emulation of the kernels (no GPU: logic, tails, alignment, warp reductions)"
if command -v g++ >/dev/null 2>&1; then
    g++ -std=c++20 -O1 -ffp-contract=off -pthread -Wno-unknown-pragmas \
        -fsanitize=address,undefined -fno-sanitize-recover=all \
        crates/dawin-kernels/emulation/emulate.cpp -o "$GEN/emulate"
    "$GEN/emulate"
    # The forward's kernels (kernels/gemm.cu, attention.cu, norm.cu, embed.cu): every block's
    # threads as OS threads (__syncthreads, shared memory), the tensor-core mma as a
    # warp-collective function with the PTX ISA's fragment layout; checked against
    # double-precision references at odd sizes.
    g++ -std=c++20 -O1 -ffp-contract=off -pthread -Wno-unknown-pragmas \
        -fsanitize=address,undefined -fno-sanitize-recover=all \
        crates/dawin-kernels/emulation/emulate_forward.cpp -o "$GEN/emulate_forward"
    "$GEN/emulate_forward"
else
    echo "SKIPPED: no g++ (C++20): the host emulation of the kernels was not run"
fi
