#!/usr/bin/env bash
# The main job on a working default, with no network and no downloads: sets up everything
# (mosquitto, .venv, the package), then runs `edge-agent demo`: a synthetic junction rendered
# here, the project's own model, an edge agent, a private mosquitto and the central controller.
# Statistics and decisions are printed as they arrive; an annotated video and a chart are
# written to out/demo/. Arguments go to `edge-agent demo`, e.g. for real video:
#   bash scripts/demo.sh --source ../shared/data/vtest.avi --model ../shared/models/yolov8n_int8.onnx
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edge-agent demo "$@"
