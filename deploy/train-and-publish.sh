#!/usr/bin/env bash
# The one-shot training/publish job (compose service `train`, k8s Job `mvcrec-train`): train on
# $DATA, export a new version to $ARTIFACT_DIR/$MODEL_NAME, publish it to $REDIS_URL and activate
# it; serving replicas that share $ARTIFACT_DIR switch to it within POLL_INTERVAL_S.
#
#   DATA            event log: user,item,timestamp CSV, or benchmark .txt (user item item ...)
#   SYNTHETIC_DATA  1: write a synthetic demo log to $DATA first if it is missing
#   MODEL           training preset (default mvcrec)
#   RUN_DIR         run directory (default runs/$MODEL_NAME-<UTC time>); a rerun of the job with
#                   the same RUN_DIR resumes from its checkpoint
#   TRAIN_ARGS      more `python -m training train` flags, e.g. "--epochs 50 --set model.dim=64"
set -euo pipefail

: "${DATA:?set DATA to the event log}" "${ARTIFACT_DIR:?}" "${MODEL_NAME:?}"
: "${REDIS_URL:?set REDIS_URL: the version is published to Redis}"

if [[ ! -f "$DATA" ]]; then
    if [[ "${SYNTHETIC_DATA:-0}" != 1 ]]; then
        echo "no event log at $DATA (set SYNTHETIC_DATA=1 for a synthetic demo log)" >&2
        exit 2
    fi
    python -m training synth --out "$DATA"
fi

run_dir="${RUN_DIR:-runs/$MODEL_NAME-$(date -u +%Y%m%dT%H%M%SZ)}"
resume=()
[[ -f "$run_dir/checkpoint.pt" ]] && resume=(--resume)
read -r -a extra <<< "${TRAIN_ARGS:-}"

exported=$(python -m training train --data "$DATA" --model "${MODEL:-mvcrec}" \
    --run-dir "$run_dir" "${resume[@]}" --export "$ARTIFACT_DIR" --name "$MODEL_NAME" \
    --no-progress "${extra[@]}" | tee /dev/stderr | sed -n 's/^exported //p')
python -m service.publish --artifact-dir "$ARTIFACT_DIR" --name "$MODEL_NAME" \
    --version "$(basename "$exported")"
