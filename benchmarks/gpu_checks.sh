#!/usr/bin/env bash
# The project's one prepared GPU check, for a lent CUDA machine (see README "Benchmarks"):
# CUDA code paths (NIQE, Ma, the rank-dataset build with network levels and under torchrun, Ranker and
# RankSRGAN training through basicsr/train.py) and GPU timings. That machine has torch but not basicsr/lmdb/addict (nor, maybe, scikit-image, used by the
# Ma check): carry them as wheels in .whl/
# (pip download / pip wheel, see the device notes). Writes logs to $OUT (default /tmp/gpu_checks).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, ranksrgan_plugin; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || exit 1

# Sections run in priority order, each under its own timeout, so one device call (<= 600 s) covers the first ones
# even when a later one is slow.
echo '== Training at the paper sizes on CUDA: fp32 (TF32), bf16, + channels_last, + compile; hours implied'
timeout 200 python3 benchmarks/train_step.py --device cuda --precision fp32 bf16 --channels-last --compile \
  --batch 8 --ranker-batch 16 --gt-size 296 --steps 8 2>&1 | tail -9 | tee "$OUT/train_precision.txt"
echo '== The paper loader (2K PNG per crop) vs the raw cache, per worker, with this machine'"'"'s cores'
nproc
timeout 90 python3 benchmarks/data_loader.py --images 4 --samples 40 --step-seconds 0.05 0.1 2>&1 | tail -6 \
  | tee "$OUT/data_loader.txt"

echo '== NIQE: batched torch (CPU, CUDA) vs basicsr process pool (target: CUDA >= 50x the pool)'
timeout 100 python3 benchmarks/niqe.py --num-patches 512 --repeats 2 2>&1 | tee "$OUT/niqe.txt"

echo "== Ma's metric: CUDA features equal the CPU ones; batched seconds per image / patch on CUDA"
timeout 90 python3 - <<'PY' 2>&1 | tee "$OUT/ma.txt"
import numpy as np, torch
from skimage import data
from ranksrgan_plugin import iqa
y = iqa.to_y_matlab(data.astronaut()[None, ..., ::-1].copy(), 'HWC', 4)
cpu, gpu = iqa.ma_features_batch(y, 'cpu'), iqa.ma_features_batch(y, 'cuda')
print('max rel CUDA vs CPU', {g: float(np.max(np.abs(gpu[g] - cpu[g]) / np.maximum(np.abs(cpu[g]), 1e-12))) for g in cpu})
PY
timeout 90 python3 benchmarks/ma.py --device cuda --patches 256 2>&1 | tail -6 | tee -a "$OUT/ma.txt"

echo '== Rank dataset end to end, built-in levels, NIQE on CUDA, vs the BasicSR pipeline; torchrun with 1 GPU'
timeout 150 python3 benchmarks/rank_dataset.py --device cuda --copies 2 --torchrun 1 2>&1 | tail -16 \
  | tee "$OUT/rank_dataset_builtin.txt"

echo '== Rank dataset end to end, network levels (SRResNet, SRResNet, ESRGAN-size RRDBNet) on CUDA, 2K mosaics'
timeout 200 python3 benchmarks/rank_dataset.py --levels network --device cuda --size 2040x1356 --copies 1 \
  --stride 148 --torchrun 1 2>&1 | tail -16 | tee "$OUT/rank_dataset_network.txt"

echo '== RankSRGANModel vs SRGANModel train step on CUDA, and the Ranker-exploitation monitor (on CUDA too)'
for gt in 128 296; do
  timeout 60 python3 benchmarks/train_step.py --device cuda --batch 8 --gt-size $gt --steps 12 2>&1 \
    | grep '^|\|^device' | tee -a "$OUT/train_step.txt"
done

echo '== make demo on CUDA (rank dataset with NIQE on CUDA, Ranker, SRResNet, RankSRGAN)'
timeout 240 python3 tools/demo.py > "$OUT/demo.log" 2>&1; echo "demo exit $?"
tail -25 "$OUT/demo.log"

echo '== test suite in this Python / numpy / torch environment, CPU only (as CI)'
CUDA_VISIBLE_DEVICES= timeout 300 python3 -m pytest tests -q -x -p no:cacheprovider \
  --ignore-glob='tests/test_mmagic*' 2>&1 | tail -15 | tee "$OUT/pytest.txt"
