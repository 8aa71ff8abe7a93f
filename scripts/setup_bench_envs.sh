#!/usr/bin/env bash
# Create the virtual environments that scripts/bench_tracking.py runs its peers in.
#
#   bash scripts/setup_bench_envs.sh [VENV_ROOT]      # default /tmp/bench-venvs
#   PYTHON=python3.11 bash scripts/setup_bench_envs.sh
#   ONLY="core norfair" bash scripts/setup_bench_envs.sh   # a subset
#
# Idempotent: a venv whose stamp file matches its pinned requirements is left
# alone; otherwise it is (re)filled with pip. The venvs live outside the repo.
#
#   core         motmetrics 1.4.0 on numpy 2 (the orchestrator; metrics via an
#                np.asfarray shim, see bench_tracking.py)
#   supervision  supervision 0.30.9 (last release with sv.ByteTrack)
#   trackers     Roboflow trackers 2.6.1 (SORT, ByteTrack, OC-SORT, BoT-SORT; numpy >= 2,
#                pulls supervision 0.31.x, hence its own venv)
#   norfair      norfair 2.3.0 (needs numpy < 2)
#   ultralytics  torch 2.14.1 + torchvision 0.29.1 first (pip takes them from this
#                machine's local wheels; ~5.5 GB, a CUDA build, run on the CPU),
#                then ultralytics 8.4.190 and lap (its tracker's assignment solver)
#
# Our own tracker runs under the repository's .venv and needs nothing here.
# Versions below are the ones the benchmark was run with (Python 3.11.7).
set -euo pipefail

ROOT="${1:-${VENV_ROOT:-/tmp/bench-venvs}}"
PYTHON="${PYTHON:-python3}"
ONLY="${ONLY:-core supervision trackers norfair ultralytics}"

declare -A REQS=(
  [core]="motmetrics==1.4.0 numpy==2.4.6 pandas==3.1.1 scipy==1.17.1"
  [supervision]="supervision==0.30.9 numpy==2.4.6"
  [trackers]="trackers==2.6.1 supervision==0.31.2 numpy==2.4.6"
  [norfair]="norfair==2.3.0 numpy==1.26.4 scipy==1.17.1"
  [ultralytics]="torch==2.14.1 torchvision==0.29.1 | ultralytics==8.4.190 lap==0.5.13 numpy==2.4.6"
)

mkdir -p "$ROOT"
for name in $ONLY; do
  reqs="${REQS[$name]:-}"
  if [[ -z "$reqs" ]]; then
    echo "unknown env '$name' (known: ${!REQS[*]})" >&2
    exit 2
  fi
  venv="$ROOT/$name"
  stamp="$venv/.bench-reqs"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$reqs" ]]; then
    echo "[$name] up to date ($venv)"
    continue
  fi
  echo "[$name] installing: $reqs"
  [[ -x "$venv/bin/python" ]] || "$PYTHON" -m venv "$venv"
  # '|' separates install steps that must run in order (torch before ultralytics).
  IFS='|' read -r -a steps <<< "$reqs"
  for step in "${steps[@]}"; do
    # shellcheck disable=SC2086 # word splitting of the requirement list is intended
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $step
  done
  printf '%s' "$reqs" > "$stamp"
  echo "[$name] done"
done
