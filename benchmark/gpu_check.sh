#!/bin/sh
# The GPU check of issue 4, a few minutes on one CUDA device: training throughput of every
# architecture, then cnn-fast (quick profile) on the CIFAR-10 copy, test accuracy and wall
# time. Usage: sh benchmark/gpu_check.sh [DATASET] [OUT]
set -eu
dataset=${1:-../shared/data/cifar10-jpeg.tar.gz}
out=${2:-runs/gpu-check}
mkdir -p "$out"
python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
    || { echo "error: no CUDA device; this check is for a GPU machine" >&2; exit 2; }
python -m benchmark.throughput --images 16384 --batch-size 512 --out "$out/throughput-gpu.md"
python -m benchmark run --methods cnn-fast --dataset "$dataset" --out "$out/cifar10"
