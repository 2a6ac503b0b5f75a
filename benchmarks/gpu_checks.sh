#!/usr/bin/env bash
# The project's one GPU check: one command on a lent CUDA box, under 9 minutes, at most 8 result files.
#
#   make gpu-wheels                          # here (needs the registry): .whl/ = what the box lacks (basicsr 1.4.2,
#                                            # lmdb, addict, yapf, platformdirs; never torch / numpy: the box's own)
#   bash benchmarks/gpu_checks.sh            # on the box (x86-64, CPython 3.12, torch + CUDA, no network), .whl/ with it
#   bash benchmarks/gpu_checks.sh --dry      # here, CPU, tiny sizes: the same sections and files (make gpu-checks-dry)
#   bash benchmarks/gpu_checks.sh --plan     # print the sections (name, timeout, result file, command); run nothing
#
# Sections, in priority order, each under its own timeout (their sum is checked below 540 s), each printing every
# row as it is measured and writing $OUT/<section>.txt; $OUT/summary.txt gets one line per section as it ends:
#   setup         install .whl/ into $SITE (PYTHONPATH), versions, GPU
#   train_step    RankSRGAN + Ranker steps at the paper's sizes: fp32 (TF32), bf16, fp16, + channels_last, + fused,
#                 + compile, hours implied for 500k + 400k iterations
#   train_resume  3 iterations of options/train_RankSRGAN_NIQE.yml with the --fast settings, killed after 1.state
#                 and resumed (guard counts and fp16 scaler state restored)
#   data_loader   the paper loader vs the raw cache
#   niqe          NIQE batched on CUDA vs BasicSR's process pool
#   ma            Ma's features on CUDA equal the CPU's, then its timings
# Environment: OUT (results, default /tmp/gpu_checks), WORK (scratch), SITE (wheels), PYTHON, DRY=1 (as --dry).
# Exit status: the number of sections that failed or timed out.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

MODE=gpu
PLAN=0
for arg in "$@"; do
  case $arg in
    --dry) MODE=dry ;;
    --plan) PLAN=1 ;;
    *) echo "usage: bash benchmarks/gpu_checks.sh [--dry] [--plan]" >&2; exit 2 ;;
  esac
done
[[ ${DRY:-0} == 1 ]] && MODE=dry
OUT=${OUT:-/tmp/gpu_checks}
WORK=${WORK:-${TMPDIR:-/tmp}/gpu_checks_work}
SITE=${SITE:-${TMPDIR:-/tmp}/gpu_checks_site}
TOTAL_LIMIT=540
SECTIONS=(setup train_step train_resume data_loader niqe ma)
declare -A LIMIT=([setup]=30 [train_step]=180 [train_resume]=140 [data_loader]=35 [niqe]=60 [ma]=45)
KILL_GRACE=5  # timeout -k: seconds between TERM and KILL, counted in the total

if [[ $MODE == dry ]]; then
  PY=${PYTHON:-.venv/bin/python}
  DEVICE=cpu
else
  PY=${PYTHON:-python3}
  DEVICE=cuda
fi

# The command of section $1 in the array CMD (sizes: the paper's on the box, tiny in the dry run).
command_of() {
  local dry=0
  [[ $MODE == dry ]] && dry=1
  case $1 in
    setup) CMD=(bash -c setup_environment) ;;
    train_step)
      CMD=("$PY" benchmarks/train_step.py --device "$DEVICE" --precision fp32 bf16 fp16 --channels-last --fused
           --compile --tf32)
      if ((dry)); then CMD+=(--batch 2 --ranker-batch 2 --gt-size 32 --steps 3)
      else CMD+=(--batch 8 --ranker-batch 16 --gt-size 296 --steps 8); fi ;;
    train_resume)
      CMD=("$PY" benchmarks/train_resume.py --device "$DEVICE" --work "$WORK/train_resume"
           --budget $((LIMIT[train_resume] - 10)))
      if ((dry)); then CMD+=(--gt-size 64 --batch 2 --workers 1)
      else CMD+=(--gt-size 296 --batch 8); fi ;;
    data_loader)
      CMD=("$PY" benchmarks/data_loader.py --step-seconds 0.05 0.1)
      if ((dry)); then CMD+=(--images 1 --samples 4)
      else CMD+=(--images 4 --samples 40); fi ;;
    niqe)
      CMD=("$PY" benchmarks/niqe.py --device "$DEVICE")
      if ((dry)); then CMD+=(--num-patches 8 --repeats 1 --workers 1)
      else CMD+=(--num-patches 512 --repeats 2); fi ;;
    ma)
      CMD=("$PY" benchmarks/ma.py --device "$DEVICE" --compare-cpu)
      if ((dry)); then CMD+=(--patches 2 --trees 20 --depth 4 --repeats 1 --threads 1)
      else CMD+=(--patches 256 --repeats 2); fi ;;
  esac
}

# Install .whl/ into $SITE (the box lacks basicsr & co.; the dry run uses the virtualenv), then print versions.
setup_environment() {
  if [[ $MODE == gpu ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
      || echo 'nvidia-smi: not found or failed'
    local wheels=(.whl/*.whl)
    if [[ -e ${wheels[0]} ]]; then
      rm -rf "$SITE"
      echo "installing ${#wheels[@]} wheels from .whl/ into $SITE: ${wheels[*]##*/}"
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "${wheels[@]}" \
        || return 1
    else
      echo '.whl/ holds no wheel: run `make gpu-wheels` on the development machine and carry .whl/ (basicsr 1.4.2,' \
        'lmdb, addict, yapf, platformdirs); going on with what this machine has'
    fi
  fi
  echo "cores: $(env -u OMP_NUM_THREADS nproc), python: $PY"
  "$PY" - "$DEVICE" <<'PY'
import importlib.util, sys
def present(name):  # a namespace package (the repository's basicsr/ folder) does not count
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.origin not in (None, 'namespace')
missing = [name for name in ('torch', 'numpy', 'cv2', 'scipy', 'skimage', 'yaml', 'tqdm', 'lmdb', 'basicsr')
           if not present(name)]
if missing:
    sys.exit(f'missing here: {", ".join(missing)} (make gpu-wheels on the development machine builds basicsr, '
             'lmdb, addict, yapf, platformdirs into .whl/; the others are expected on the box)')
import numpy, torch
import ranksrgan_plugin, basicsr
print(f'python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}, basicsr '
      f'{basicsr.__version__}, ranksrgan_plugin {ranksrgan_plugin.__version__}')
if sys.argv[1] == 'cuda':
    if not torch.cuda.is_available():
        sys.exit('CUDA is not available to this torch')
    print('CUDA device:', torch.cuda.get_device_name(0), f'(capability {torch.cuda.get_device_capability(0)})')
else:
    print('dry run: CPU only, tiny sizes (same sections and files as on the box)')
PY
}
export -f setup_environment
export MODE PY DEVICE SITE

# Check the timeouts fit in TOTAL_LIMIT; print the plan (--plan) or run the sections.
total=0
for name in "${SECTIONS[@]}"; do total=$((total + LIMIT[$name] + KILL_GRACE)); done
if ((total >= TOTAL_LIMIT)); then
  echo "the sections' timeouts (+${KILL_GRACE} s each) add up to ${total} s, not under ${TOTAL_LIMIT} s" >&2
  exit 2
fi
if ((PLAN)); then
  for name in "${SECTIONS[@]}"; do
    command_of "$name"
    printf '%s\t%s\t%s\t%s\n' "$name" "${LIMIT[$name]}" "$name.txt" "${CMD[*]}"
  done
  printf 'summary\t0\tsummary.txt\t(written by this script)\n'
  exit 0
fi

mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
if [[ $MODE == gpu ]]; then
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else  # one thread per process: on a busy 2-core machine OpenMP's spinning threads make each step 10x slower
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
fi
SUMMARY=$OUT/summary.txt
printf '%s mode, %s, timeouts %s s in all\n| section | status | seconds | timeout |\n|---|---|---:|---:|\n' \
  "$MODE" "$(date -u +%FT%TZ)" "$total" > "$SUMMARY"
failed=0
start_all=$EPOCHREALTIME
for name in "${SECTIONS[@]}"; do
  command_of "$name"
  echo "== $name (timeout ${LIMIT[$name]} s): ${CMD[*]}"
  start=$EPOCHREALTIME
  timeout -k "$KILL_GRACE" "${LIMIT[$name]}" "${CMD[@]}" 2>&1 | tee "$OUT/$name.txt"
  status=${PIPESTATUS[0]}
  seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  case $status in
    0) result=ok ;;
    124 | 137) result="TIMED OUT"; failed=$((failed + 1)) ;;
    *) result="FAILED (exit $status)"; failed=$((failed + 1)) ;;
  esac
  printf '| %s | %s | %s | %s |\n' "$name" "$result" "$seconds" "${LIMIT[$name]}" >> "$SUMMARY"
  if [[ $name == setup && $status != 0 ]]; then
    echo 'setup failed: the other sections need its imports; stopping' >> "$SUMMARY"
    break
  fi
done
seconds=$(awk -v a="$start_all" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
printf '%s section(s) failed; %s s in all\n' "$failed" "$seconds" >> "$SUMMARY"
echo "== summary ($SUMMARY)"
cat "$SUMMARY"
exit "$failed"
