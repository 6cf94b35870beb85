#!/bin/sh
# A prepared GPU check (about 8 minutes on an H200): training throughput of every architecture,
# then the rows that train networks on the CIFAR-10 copy (quick profile): the pseudo-label and
# DeepCluster rows first, then cnn-fast. Each finished row's record is kept, so a rerun resumes.
# Usage: sh benchmark/gpu_check.sh [DATASET] [OUT]
set -eu
dataset=${1:-../shared/data/cifar10-jpeg.tar.gz}
out=${2:-runs/gpu-check}
mkdir -p "$out"
python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
    || { echo "error: no CUDA device; this check is for a GPU machine" >&2; exit 2; }
python -m benchmark.throughput --images 8192 --batch-size 512 --out "$out/throughput-gpu.md"
rows=$(python -c "from benchmark.registry import METHODS
print(','.join(name for name in METHODS if name.startswith(('uic-', 'deepcluster-'))))")
python -m benchmark run --methods "$rows,cnn-fast" --dataset "$dataset" --n-jobs "$(nproc)" \
    --out "$out/cifar10"
