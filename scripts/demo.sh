#!/usr/bin/env bash
# The main job on a working default: sets up everything, starts a private mosquitto on a free
# localhost port, runs the edge agent on the real surveillance video in ../shared with the real
# COCO YOLOv8n model, and prints every MQTT message the agent publishes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [ ! -f ../shared/models/yolov8n_int8.onnx ] || [ ! -f ../shared/data/vtest.avi ]; then
  cat >&2 <<'MSG'
demo: ../shared/models/yolov8n_int8.onnx or ../shared/data/vtest.avi is missing.
This default run uses them. To run on your own camera instead, export a YOLO model to ONNX on any
machine with internet access:
    pip install ultralytics onnx          # brings PyTorch
    yolo export model=yolov8n.pt format=onnx imgsz=640
then copy yolov8n.onnx to the edge box, set model.path and cameras[0].source in a copy of
configs/vtest.yaml, and run:  .venv/bin/edge-agent run -c your.yaml
MSG
  exit 1
fi

port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
broker=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$broker" -p "$port" >/dev/null 2>&1 &
broker_pid=$!
sub_pid=""
trap 'kill $sub_pid $broker_pid 2>/dev/null || true' EXIT
sleep 0.5
echo "demo: mosquitto on localhost:$port; subscribed to traffic/# (statistics every 10 s of video)"
mosquitto_sub -p "$port" -v -t 'traffic/#' &
sub_pid=$!
MQTT_PORT=$port .venv/bin/edge-agent run -c configs/vtest.yaml "$@"
sleep 1
