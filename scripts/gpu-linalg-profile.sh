#!/usr/bin/env bash
# Per-kernel GPU time of one solver problem under ncu (no nsys on the GPU machine):
#   scripts/gpu-linalg-profile.sh <build> "<what> <n>" <kernel regex> <skip> <count>
# what: lu, blu (10000 batched), trsm, getrs (bench/cuda_linalg.c's "one" mode).
set -uo pipefail
b=$1 what=$2 re=$3 skip=${4:-0} count=${5:-8}
ncu --clock-control none --kernel-name "regex:$re" --launch-skip "$skip" --launch-count "$count" \
  --metrics gpu__time_duration.sum "$b/cuda_linalg" 1 one $what 2>&1 |
  awk '/^  alloy_|^  void|^  [a-z_]+\(/{name=$1} /gpu__time_duration.sum/{printf "%-28s %s %s\n", name, $(NF-1), $NF}'
