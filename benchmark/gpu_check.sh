#!/bin/sh
# The prepared check for a GPU machine (within 9 minutes, start-up included): the gpu profile,
# on the CIFAR-10 copy, of SimCLR's ResNet18 encoder and SCAN on it (neighbour clustering then
# self-labelling), of the study's best clustering row (uic-vgg16bn-rgb) and of cnn-vgg16bn. Their
# records and report (results.md) land in one folder; each finished row's record is kept, so a
# rerun resumes and a cut-off keeps what finished.
# Usage: sh benchmark/gpu_check.sh [DATASET] [OUT]
set -eu
dataset=${1:-../shared/data/cifar10-jpeg.tar.gz}
out=${2:-runs/gpu-check}
mkdir -p "$out"
python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
    || { echo "error: no CUDA device; this check is for a GPU machine" >&2; exit 2; }
python -m benchmark run --profile gpu --dataset "$dataset" --n-jobs "$(nproc)" --out "$out" \
    --methods simclr-resnet18,scan-resnet18-selflabel,uic-vgg16bn-rgb,cnn-vgg16bn
