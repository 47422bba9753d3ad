#!/usr/bin/env bash
# The GPU checks, run on a lent CUDA machine from the repository root (no registry there: faiss
# travels as a wheel in .whl/, the datasets in .data/). Writes into OUT_DIR:
#   checks:          gpu_check.{json,md} (encoder + top-k search, CUDA vs that machine's CPU),
#                    train_speed_cuda.{json,md} (one Beauty epoch per model on CUDA)
#   grid SECONDS:    runs bench/accuracy_grid_gpu.json with WORKERS parallel workers for at most
#                    SECONDS, then packs every run's result/history/spec/config into runs.tar.gz
#
#   bench/device_suite.sh "$OUT" checks
#   WORKERS=12 bench/device_suite.sh "$OUT" grid 400
set -u
out=$1
phase=$2
export PYTHONUNBUFFERED=1 PYTHONPATH=.
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=.:/tmp/site
fi
datasets=${DATASETS:-.data}
mkdir -p "$out"

case $phase in
checks)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$out/nvidia-smi.csv"
  python3 -m bench.gpu_check --results "$out" 2>&1 | tail -40
  python3 -m bench.train_speed --device cuda --dataset Beauty --datasets "$datasets" \
    --repeats 2 --results "$out"
  ;;
grid)
  seconds=${3:-400}
  pids=()
  for i in $(seq "${WORKERS:-12}"); do
    python3 -m bench.accuracy --grid "${GRID:-bench/accuracy_grid_gpu.json}" --datasets "$datasets" \
      --runs /tmp/gpu-runs --results /tmp/gpu-results >"/tmp/worker$i.log" 2>&1 &
    pids+=($!)
    sleep 2  # workers claim entries one after another
  done
  end=$((SECONDS + seconds))
  while ((SECONDS < end)) && [[ -n $(jobs -rp) ]]; do sleep 5; done
  kill "${pids[@]}" 2>/dev/null
  tail -n 3 /tmp/worker*.log
  (cd /tmp/gpu-runs && tar czf "$out/runs.tar.gz" --exclude='*.pt' --exclude='*.png' \
    --exclude='worker.lock' .)
  tail -n 5 /tmp/worker1.log >"$out/worker1.log"
  ;;
*)
  echo "unknown phase $phase" >&2
  exit 2
  ;;
esac
