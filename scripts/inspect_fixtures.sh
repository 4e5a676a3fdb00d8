#!/usr/bin/env bash
# Regenerates docs/inspect-fixtures.md: `dawin inspect` on every checkpoint form of the PyTorch
# fixtures (crates/dawin-core/tests/fixtures/torch/, made by scripts/make_torch_fixtures.py) and
# on the demo's checkpoints, real output. Run from the workspace root:
#   bash scripts/inspect_fixtures.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p dawin-cli
bin=target/debug/dawin
F=crates/dawin-core/tests/fixtures/torch
out=docs/inspect-fixtures.md
tmp=$(mktemp)
{
  echo "# \`dawin inspect\` on every checkpoint form"
  echo
  echo "Real output of \`dawin inspect\` (regenerate: \`bash scripts/inspect_fixtures.sh\`, commit $(git rev-parse --short HEAD))"
  echo "on the demo's checkpoints and on the PyTorch fixtures made by"
  echo "[\`scripts/make_torch_fixtures.py\`](../scripts/make_torch_fixtures.py) (torch 2.15.0, open_clip_torch 3.3.0,"
  echo "transformers 5.23.0): small random towers in every form the tool reads. The tests compare"
  echo "\`dawin logits\` on each with PyTorch's forward (crates/dawin-cli/tests/checkpoints.rs)."
  echo "A fixture's DEFAULT lines are what a real checkpoint of that form would also need a flag or a"
  echo "config file for; the open_clip towers' \`open_clip_config.json\` files are stored under other names, so"
  echo "they are given with \`--config\` (a file named \`open_clip_config.json\` beside the checkpoint is read by itself)."
  for spec in \
    "the demo's θ0 (safetensors, dawin metadata)|crates/dawin-cli/demo/theta0.safetensors" \
    "torch.save state dict, zip (DaWin's zeroshot_clipvitb32.pt layout)|$F/sd_zip.pt" \
    "torch.save state dict, legacy (non-zip) format|$F/sd_legacy.pt" \
    "torch.save state dict, f16|$F/sd_f16.pt" \
    "torch.save state dict, bf16|$F/sd_bf16.pt" \
    "torch.save state dict, bf16, legacy format|$F/sd_bf16_legacy.pt" \
    "pickle.dump of a whole WiSE-FT ImageClassifier (legacy storages)|$F/wiseft.pkl" \
    "torch.save of a whole open_clip CLIP module (task_vectors' zeroshot.pt)|$F/zeroshot.pt" \
    "TorchScript archive (OpenAI's ViT-B-32.pt layout), with a head file|$F/jit.pt --head $F/head_Tiny.pt" \
    "safetensors in the OpenAI naming|$F/tiny_f32.safetensors" \
    "Hugging Face directory (config.json beside: exact GELU, 2 heads of 48)|$F/hf_gelu --head $F/hf_gelu_head.safetensors" \
    "open_clip tower, QuickGELU, its open_clip_config.json given by --config|$F/arch_quickgelu.pt --config $F/arch_quickgelu_open_clip_config.json" \
    "open_clip tower, exact GELU, its open_clip_config.json given by --config|$F/arch_gelu.pt --config $F/arch_gelu_open_clip_config.json" \
    "open_clip tower with LayerScale, its open_clip_config.json given by --config|$F/arch_ls.pt --config $F/arch_ls_open_clip_config.json" \
    "open_clip tower with heads of width 48, its open_clip_config.json given by --config|$F/arch_hw48.pt --config $F/arch_hw48_open_clip_config.json" \
    "TorchScript archive without vision weights (an error)|$F/jit_no_vision.pt"; do
    title=${spec%%|*}; args=${spec#*|}
    echo
    echo "## $title"
    echo
    echo '```text'
    echo "\$ dawin inspect $args"
    # shellcheck disable=SC2086
    $bin inspect $args 2>&1 || true
    echo '```'
  done
} > "$tmp"
mv "$tmp" "$out"
echo "wrote $out"
