"""``edge-agent demo``: the whole system on one machine, with no network and no downloads.

Renders (or reuses) a synthetic junction clip with the project's own model, starts a private
mosquitto on a free localhost port, runs an edge agent on the clip and the central controller,
prints the interval statistics and the controller's decisions as they arrive, and writes an
annotated video and a PNG chart of the counts. With ``--source`` and ``--model`` it runs on real
inputs instead, with one counting line across the middle of the image.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.localbroker import LocalBroker, MosquittoNotFound, free_port

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "synth-yolo11n.onnx"
PREFIX = "demo"
CONTROLLER_TEMPLATE = ROOT / "configs" / "controller.yaml"


def _synthetic(out: Path, seconds: float, seed: int) -> tuple[Path, list[dict[str, Any]], Any]:
    """Render the clip once (reused while seed and length match); return source, lines, truth."""
    from edge_agent.synth import render_clip

    clip_dir = out / f"clip-seed{seed}-{seconds:g}s"
    truth_file = clip_dir / "truth.json"
    if not truth_file.is_file():
        print(f"demo: rendering a {seconds:g} s synthetic junction clip (seed {seed}) into {clip_dir} ...",
              flush=True)
        t0 = time.monotonic()
        render_clip(seed, seconds=seconds, fps=15.0, out_dir=clip_dir)
        print(f"demo: rendered in {time.monotonic() - t0:.0f} s", flush=True)
    else:
        print(f"demo: reusing {clip_dir}", flush=True)
    truth = json.loads(truth_file.read_text())
    agent_cfg = yaml.safe_load((clip_dir / "agent.yaml").read_text().replace("${MQTT_PORT:-1883}", "1883"))
    return clip_dir / "clip.avi", agent_cfg["cameras"][0]["lines"], truth


def _middle_line(source: Path) -> list[dict[str, Any]]:
    cap = cv2.VideoCapture(str(source))
    ok, img = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"demo: cannot read a frame from {source}")
    h, w = img.shape[:2]
    return [{"id": "middle", "p1": [round(w * 0.05), h // 2], "p2": [round(w * 0.95), h // 2], "in_side": "right"}]


def _controller_config(work: Path, port: int, camera: str, lines: list[dict[str, Any]], http_port: int) -> Path:
    """The shipped controller configuration, re-pointed at the demo's camera and lines."""
    cfg = yaml.safe_load(CONTROLLER_TEMPLATE.read_text())
    cfg["mqtt"].update({"host": "127.0.0.1", "port": port, "topic_prefix": PREFIX})
    cfg["store"] = {"sqlite": str(work / "controller.db")}
    cfg["http"] = {"host": "127.0.0.1", "port": http_port}
    cfg.setdefault("forecast", {})["enabled"] = False  # a one-minute clip has no history to learn from
    ids = [ln["id"] for ln in lines]
    ref = lambda lid, d="in": {"camera": camera, "line": lid, "direction": d}  # noqa: E731
    if set(ids) >= {"N", "E", "S", "W"}:
        approaches = [{"id": a, "lanes": 1, "flows": [ref(a[0].upper())]} for a in ("north", "south", "east", "west")]
        phases = [{"id": "north-south", "approaches": ["north", "south"], "min_green_s": 10, "max_green_s": 60},
                  {"id": "east-west", "approaches": ["east", "west"], "min_green_s": 10, "max_green_s": 60}]
        cfg["intersections"] = [{"id": "junction", "min_cycle_s": 40, "max_cycle_s": 120,
                                 "approaches": approaches, "phases": phases}]
    else:
        cfg["intersections"] = []
    for seg in cfg.get("lighting", {}).get("segments", []):
        seg["flows"] = [ref(i, "both") for i in ids]
    for area in cfg.get("services", {}).get("areas", []):
        for opt in area.get("options", []):
            if "route" in opt:
                opt["route"] = [ref(ids[0])]
            if "occupancy" in opt:
                opt["occupancy"] = {"entry": ref(ids[-1], "in"), "exit": ref(ids[-1], "out")}
    path = work / "controller.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class _Printer:
    """Prints statistics and decisions as they arrive; keeps the statistics for the chart."""

    def __init__(self, port: int):
        self.stats: list[dict[str, Any]] = []
        self.decisions = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-console")
        self.client.on_connect = lambda c, *a: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic.split("/")
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            doc = msg.payload.decode(errors="replace")
        kind = topic[-1]
        with self.lock:
            if kind == "stats" and isinstance(doc, dict):
                self.stats.append(doc)
                lines = "  ".join(
                    f"{ln['line_id']}: in {ln['in']['total']} out {ln['out']['total']}" for ln in doc["lines"])
                iv = doc["interval"]
                print(f"  stats  {doc['camera_id']} {iv['start'][11:19]}-{iv['end'][11:19]}  {lines}  "
                      f"({doc['frames']['processed']} frames)", flush=True)
            elif kind == "health" and isinstance(doc, dict):
                print(f"  health {doc['camera_id']}: {doc['state']}, {doc['frames_processed']} frames, "
                      f"{doc['fps']} fps, spool {doc['spool_depth']}", flush=True)
            elif topic[1] == "signals" and kind == "plan" and isinstance(doc, dict):
                self.decisions += 1
                greens = ", ".join(f"{p.get('id')} {p.get('green_s', 0):.0f} s" for p in doc.get("phases", []))
                print(f"  signal plan {topic[2]}: cycle {doc.get('cycle_s', 0):.0f} s ({greens})", flush=True)
            elif topic[1] == "lighting" and kind == "set" and isinstance(doc, dict):
                self.decisions += 1
                print(f"  lighting {topic[2]}: level {doc.get('level')}", flush=True)
            elif topic[1] == "services" and isinstance(doc, dict):
                self.decisions += 1
                ranked = doc.get("options") or doc.get("ranking") or []
                best = ranked[0] if ranked else {}
                print(f"  services {topic[2]}: first {best.get('id')} (p = {best.get('probability', 0):.2f})",
                      flush=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def draw_chart(stats: list[dict[str, Any]], path: Path) -> None:
    """A PNG of crossings per interval and line (in + out), drawn with OpenCV."""
    w, h, m = 900, 420, 60
    img = np.full((h, w, 3), 255, np.uint8)
    stats = sorted(stats, key=lambda d: d["interval"]["start"])
    lines = [ln["line_id"] for ln in stats[0]["lines"]] if stats else []
    series = {lid: [sum(ln[d]["total"] for d in ("in", "out")) for doc in stats for ln in doc["lines"]
                    if ln["line_id"] == lid] for lid in lines}
    top = max([1] + [v for s in series.values() for v in s])
    n = max(1, len(stats))
    cv2.line(img, (m, h - m), (w - 20, h - m), (0, 0, 0), 1)
    cv2.line(img, (m, 20), (m, h - m), (0, 0, 0), 1)
    for k in range(0, top + 1, max(1, top // 5)):
        y = int(h - m - k / top * (h - m - 20))
        cv2.putText(img, str(k), (15, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    palette = [(200, 80, 30), (40, 160, 40), (30, 30, 220), (160, 60, 160), (0, 140, 220), (120, 120, 0)]
    bar = (w - m - 40) / n / max(1, len(lines))
    for li, lid in enumerate(lines):
        col = palette[li % len(palette)]
        for i, v in enumerate(series[lid]):
            x = int(m + 10 + (i * len(lines) + li) * bar)
            y = int(h - m - v / top * (h - m - 20))
            cv2.rectangle(img, (x, y), (x + max(1, int(bar) - 2), h - m), col, -1)
        cv2.putText(img, lid, (w - 120, 30 + 18 * li), cv2.FONT_HERSHEY_SIMPLEX, 0.5, col, 1, cv2.LINE_AA)
    for i, doc in enumerate(stats):
        if i % max(1, n // 8) == 0:
            x = int(m + 10 + i * len(lines) * bar)
            cv2.putText(img, doc["interval"]["start"][11:19], (x, h - m + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "crossings per interval (in + out)", (m, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    if (args.source is None) != (args.model is None):
        raise SystemExit("demo: give --source and --model together (or neither, for the synthetic junction)")
    if args.source is None:
        model = DEFAULT_MODEL
        if not model.is_file():
            raise SystemExit(f"demo: the project's model {model} is missing; run from a checkout of the repository")
        source, lines, truth = _synthetic(out, args.seconds, args.seed)
        camera, start = "junction", "2024-05-06T08:00:00Z"
        true_total = len(truth.get("crossings", []))
    else:
        model, source = Path(args.model).resolve(), Path(args.source).resolve()
        for p in (model, source):
            if not p.is_file():
                raise SystemExit(f"demo: file not found: {p}")
        lines, camera, start, true_total = _middle_line(source), "camera", "2024-05-06T08:00:00Z", None
    try:
        broker = LocalBroker(work, max_queued_messages=1000, verbose=False)
    except MosquittoNotFound as exc:
        raise SystemExit(f"demo: {exc}; bash scripts/demo.sh installs it for you") from None
    port = broker.port
    procs: list[subprocess.Popen[bytes]] = []
    printer = None
    try:
        agent_cfg = {
            "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "demo-node", "topic_prefix": PREFIX},
            "model": {"path": str(model), "confidence": 0.1},
            "statistics": {"interval_s": 10},
            "spool": {"dir": str(work / "spool")},
            "health": {"interval_s": 5},
            "cameras": [{"id": camera, "source": str(source), "start_time": start, "lines": lines}],
        }
        (work / "agent.yaml").write_text(yaml.safe_dump(agent_cfg, sort_keys=False))
        printer = _Printer(port)
        print(f"demo: broker on 127.0.0.1:{port}; everything the agent and controller publish under "
              f"'{PREFIX}/#' is printed below", flush=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if not args.no_controller:
            http_port = free_port()
            ccfg = _controller_config(work, port, camera, lines, http_port)
            procs.append(subprocess.Popen([sys.executable, "-m", "edge_agent", "--log-level", "WARNING",
                                           "controller", "-c", str(ccfg)], env=env))
            print(f"demo: controller running; dashboard at http://127.0.0.1:{http_port}/", flush=True)
        annotated = out / "annotated.mp4"
        agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "--log-level", "WARNING", "run", "-c",
                                  str(work / "agent.yaml"), "--annotate", str(annotated)], env=env)
        rc = agent.wait()
        if not args.no_controller:
            time.sleep(12)  # one more decision round on the last interval
        chart = out / "counts.png"
        draw_chart(printer.stats, chart)
        counted = sum(ln[d]["total"] for doc in printer.stats for ln in doc["lines"] for d in ("in", "out"))
        print(f"demo: {len(printer.stats)} statistics messages, {counted} crossings counted"
              + (f" (the generator's ground truth: {true_total})" if true_total is not None else "")
              + f", {printer.decisions} decisions", flush=True)
        print(f"demo: annotated video {annotated}, chart {chart}", flush=True)
        return rc
    finally:
        if printer is not None:
            printer.close()
        for p in procs:  # the controller, then the broker
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.stop()
