#!/usr/bin/env bash
# One-shot GPU session for dawin-rs: the GPU tests and benches of dawin-kernels and dawin-vit's
# CUDA forward, from prebuilt executables (the GPU machine needs neither Rust nor network).
#
#   bash scripts/gpu_session.sh prepare   # here (Rust toolchain): build, copy into .dev-device/
#   bash scripts/gpu_session.sh run       # there, from the workspace root: run everything and
#                                         # print what docs/gpu-runs.md records
#
# `prepare` builds in release the test binaries `gpu` (dawin-kernels) and `cuda` (dawin-vit) and
# the bench binaries `kernels` and `vit_cuda` (dawin-benches), strips them and copies them to
# .dev-device/bin/ (git-ignored) with the commit they were built from. Carry `.dev-device` to
# the GPU machine (it is < 64 MiB; the script prints its size).
#
# `run` needs an NVIDIA driver R550+ and a GPU of compute capability 8.0+ for the transformer
# kernels (7.0+ for the merge kernels); it sets DAWIN_REQUIRE_GPU=1, so a GPU that does not start
# is a failure, never a SKIPPED pass. It writes every log to $OUT (or .dev-device/out/) and ends with a
# Markdown summary. Optional: the PyTorch peer bench (benches/peer/clip_forward.py) runs when
# `python3 -c "import torch"` works there. Env: VIT_CUDA_BATCH, VIT_CUDA_ITERS, VIT_CUDA_MODELS
# (passed to the vit_cuda bench), PEER_ARGS (passed to the peer script).
set -uo pipefail
cd "$(dirname "$0")/.."
DEV=.dev-device

prepare() {
    set -e
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    mkdir -p "$DEV/bin"
    local json
    json="$(mktemp)"
    cargo test --release --no-run -p dawin-kernels -p dawin-vit -p dawin --message-format=json >"$json"
    cargo bench --no-run -p dawin-benches --bench vit_cuda --bench kernels --message-format=json >>"$json"
    python3 - "$json" "$DEV/bin" <<'EOF'
import json, shutil, sys
want = {("dawin-kernels", "gpu", "test"): "kernels_gpu_tests",
        ("dawin-vit", "cuda", "test"): "vit_cuda_tests",
        ("dawin", "cuda_pipeline", "test"): "dawin_cuda_pipeline",
        ("dawin-benches", "vit_cuda", "bench"): "vit_cuda_bench",
        ("dawin-benches", "kernels", "bench"): "kernels_bench"}
found = {}
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    # package ids: "path+file:///.../dawin-vit#0.1.0" or "path+file:///.../benches#dawin-benches@0.1.0"
    url, _, frag = m["package_id"].partition("#")
    pkg = frag.split("@")[0] if "@" in frag else url.rstrip("/").rsplit("/", 1)[-1]
    t = m["target"]
    for kind in t["kind"]:
        key = (pkg, t["name"], kind)
        if key in want:
            found[want[key]] = m["executable"]
missing = set(want.values()) - set(found)
if missing:
    sys.exit(f"not built: {sorted(missing)} (found {found})")
for name, exe in found.items():
    shutil.copy(exe, f"{sys.argv[2]}/{name}")
    print(f"{name} <- {exe}")
EOF
    rm -f "$json"
    strip "$DEV"/bin/* 2>/dev/null || true
    {
        echo "commit $(git rev-parse HEAD)"
        echo "dirty files: $(git status --short -- crates kernels benches | wc -l)"
        echo "built $(date -u +%Y-%m-%dT%H:%MZ) with $(rustc --version)"
    } >"$DEV/BUILD"
    cat "$DEV/BUILD"
    du -sh "$DEV"
    echo "carry: .dev-device   then run: bash scripts/gpu_session.sh run"
}

run() {
    local out="${OUT:-$DEV/out}"
    mkdir -p "$out"
    test -x "$DEV/bin/vit_cuda_tests" || { echo "no $DEV/bin: run 'bash scripts/gpu_session.sh prepare' where Rust is"; exit 1; }
    export DAWIN_VIT_FIXTURES="$PWD/crates/dawin-vit/tests/fixtures"
    # A GPU that does not start (no device, old driver, PTX rejected, ...) fails every GPU test
    # and bench instead of printing SKIPPED and exiting 0 (dawin_kernels::harness).
    export DAWIN_REQUIRE_GPU=1
    local status=0
    step() {  # name, timeout seconds, command...
        local name="$1" limit="$2"
        shift 2
        echo "== $name: $*"
        local t0=$SECONDS
        timeout "$limit" "$@" >"$out/$name.log" 2>&1
        local rc=$?
        tail -n 60 "$out/$name.log"
        echo "== $name: exit $rc after $((SECONDS - t0)) s"
        echo "$name $rc $((SECONDS - t0))" >>"$out/steps.txt"
        [ "$rc" -eq 0 ] || status=1
    }
    : >"$out/steps.txt"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv >"$out/nvidia-smi.txt" 2>&1 || true
    cat "$out/nvidia-smi.txt"
    cat "$DEV/BUILD" 2>/dev/null
    step kernels_gpu_tests 300 "$DEV/bin/kernels_gpu_tests"
    step vit_cuda_tests 400 "$DEV/bin/vit_cuda_tests"
    # The same tests with the GEMM's fallback fragment loads (32-bit loads instead of ldmatrix):
    # tells a fault of the ldmatrix path apart from the rest.
    step vit_cuda_tests_lds 400 env DAWIN_VIT_GEMM=lds "$DEV/bin/vit_cuda_tests"
    # The device pipeline against the CPU on the embedded demo: every two-model method with θ0/θ1
    # uploaded once (dawin::cuda::CudaClassifier::pair: merges into device arenas, row-statistics
    # entropies, kept workspace) and every multi-task method (dawin::cuda::mtl::CudaEncoders).
    step dawin_cuda_pipeline 300 env DAWIN_DEMO_DIR="$PWD/crates/dawin-cli/demo" "$DEV/bin/dawin_cuda_pipeline"
    step vit_cuda_bench 500 "$DEV/bin/vit_cuda_bench" --bench
    step kernels_bench 300 "$DEV/bin/kernels_bench" --bench
    if python3 -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        step peer_clip_forward 500 python3 benches/peer/clip_forward.py ${PEER_ARGS:-}
    else
        echo "SKIPPED: python3 with a CUDA-enabled torch not found; peer bench not run" | tee "$out/peer_clip_forward.log"
    fi

    echo
    echo "---- for docs/gpu-runs.md ----"
    echo "### $(date -u +%Y-%m-%d) — $(head -n 1 "$DEV/BUILD" 2>/dev/null)"
    echo
    echo '```'
    cat "$out/nvidia-smi.txt"
    echo '```'
    echo
    echo "| step | exit | seconds |"
    echo "|---|---:|---:|"
    while read -r n rc s; do echo "| $n | $rc | $s |"; done <"$out/steps.txt"
    echo
    for n in kernels_gpu_tests vit_cuda_tests vit_cuda_tests_lds dawin_cuda_pipeline; do
        echo "$n:"
        echo '```'
        grep -E "^test |SKIPPED|passed|FAILED|rel err|tests on|cuda .* cpu| on .*T0" "$out/$n.log" || true
        echo '```'
    done
    for n in vit_cuda_bench peer_clip_forward; do
        echo "$n:"
        echo
        grep -E "^\||on " "$out/$n.log" || true
        echo
    done
    return $status
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run"; exit 2 ;;
esac
