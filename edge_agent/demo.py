"""``edge-agent demo``: the whole system on one machine, with no network and no downloads.

Renders (or reuses) a synthetic junction clip with the project's own model, starts a private
mosquitto on a free localhost port, runs an edge agent on the clip and the central controller,
prints the interval statistics (counts and lane queues) and the controller's decisions as they
arrive, and writes an annotated video, a PNG chart of the counts and the statistics messages
(stats.jsonl). The synthetic clip plays as a live camera would (at its frame rate, on the wall
clock), so that the controller's presence-driven signal control runs on the camera's lane
presence: each phase change is printed with the presence it was decided on. With ``--source`` and
``--model`` it runs on real inputs instead, with one counting line across the middle of the image.
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
import urllib.request
from datetime import datetime, timezone
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
ARM_APPROACH = {"N": "north", "S": "south", "E": "east", "W": "west"}
INTERVAL_S = 10
LIVE_LEAD_S = 5.0  # the agent's start-up (imports, model) must fit in this; see _live_start
# the controller's actuation (configs/controller.yaml has the same, commented out, with explanations)
ACTUATION = {"tick_s": 0.5, "max_green_factor": 1.5, "gap_out_veh": 0, "extension_zone_s": 2.5,
             "queue_per_extending_veh": 4.0, "stale_after_s": 3}


def _synthetic(out: Path, seconds: float, seed: int) -> tuple[Path, dict[str, Any], Any]:
    """Render the clip once (reused while seed and length match); return source, camera section, truth.

    The camera section is the generated agent.yaml's: lines, lane zones, movements, calibration.
    """
    from edge_agent.synth import render_clip

    clip_dir = out / f"clip-seed{seed}-{seconds:g}s"
    truth_file = clip_dir / "truth.json"
    agent_file = clip_dir / "agent.yaml"
    if truth_file.is_file() and agent_file.is_file() and "zones:" not in agent_file.read_text():
        truth_file.unlink()  # rendered by an older version, without lane zones
    if not truth_file.is_file():
        print(f"demo: rendering a {seconds:g} s synthetic junction clip (seed {seed}) into {clip_dir} ...",
              flush=True)
        t0 = time.monotonic()
        render_clip(seed, seconds=seconds, fps=15.0, out_dir=clip_dir)
        print(f"demo: rendered in {time.monotonic() - t0:.0f} s", flush=True)
    else:
        print(f"demo: reusing {clip_dir}", flush=True)
    truth = json.loads(truth_file.read_text())
    agent_cfg = yaml.safe_load(agent_file.read_text().replace("${MQTT_PORT:-1883}", "1883"))
    cam = agent_cfg["cameras"][0]
    return clip_dir / "clip.avi", {k: cam[k] for k in ("lines", "zones", "movements", "calibration") if k in cam}, \
        truth


def _live_start(now: float) -> str:
    """The clip's start time when it plays as a live camera: the wall clock, a little ahead.

    The controller judges presence by its time stamp (``stale_after_s``), so the frames' time must
    follow the wall clock. The first frame is stamped ``LIVE_LEAD_S`` to ``LIVE_LEAD_S +
    INTERVAL_S`` seconds after ``now`` (the next interval boundary), which covers the agent's
    start-up and keeps the statistics intervals whole.
    """
    start = (int(now + LIVE_LEAD_S) // INTERVAL_S + 1) * INTERVAL_S
    return datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _middle_line(source: Path) -> list[dict[str, Any]]:
    cap = cv2.VideoCapture(str(source))
    ok, img = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"demo: cannot read a frame from {source}")
    h, w = img.shape[:2]
    return [{"id": "middle", "p1": [round(w * 0.05), h // 2], "p2": [round(w * 0.95), h // 2], "in_side": "right"}]


def _controller_config(work: Path, port: int, camera: str, lines: list[dict[str, Any]], http_port: int,
                       zones: list[dict[str, Any]] | None = None) -> Path:
    """The shipped controller configuration, re-pointed at the demo's camera and lines.

    With a lane zone on every approach of the junction (the synthetic camera's ``<arm>-in``), each
    approach gets its presence lane and the intersection runs presence-driven phase control.
    """
    cfg = yaml.safe_load(CONTROLLER_TEMPLATE.read_text())
    cfg["mqtt"].update({"host": "127.0.0.1", "port": port, "topic_prefix": PREFIX})
    cfg["store"] = {"sqlite": str(work / "controller.db")}
    cfg["http"] = {"host": "127.0.0.1", "port": http_port}
    cfg.setdefault("forecast", {})["enabled"] = False  # a one-minute clip has no history to learn from
    ids = [ln["id"] for ln in lines]
    ref = lambda lid, d="in": {"camera": camera, "line": lid, "direction": d}  # noqa: E731
    if set(ids) >= {"N", "E", "S", "W"}:
        lanes: dict[str, list[str]] = {}
        for z in zones or []:
            if z.get("lane") and z.get("approach") in ARM_APPROACH:
                lanes.setdefault(ARM_APPROACH[z["approach"]], []).append(f"{camera}:{z['lane']}")
        approaches = [{"id": a, "lanes": 1, "flows": [ref(a[0].upper())], "presence": lanes.get(a, [])}
                      for a in ("north", "south", "east", "west")]
        # east-west first: the controller starts on its first phase, and the synthetic junction's own
        # fixed-time signal (edge_agent.synth.world.SignalPlan) is in its east-west green when a clip starts
        phases = [{"id": "east-west", "approaches": ["east", "west"], "min_green_s": 10, "max_green_s": 60},
                  {"id": "north-south", "approaches": ["north", "south"], "min_green_s": 10, "max_green_s": 60}]
        junction = {"id": "junction", "min_cycle_s": 40, "max_cycle_s": 120, "approaches": approaches,
                    "phases": phases}
        if all(a["presence"] for a in approaches):
            junction["actuation"] = dict(ACTUATION)
        cfg["intersections"] = [junction]
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


def _lanes_now(doc: dict[str, Any]) -> str:
    """A presence message in a few words: vehicles in view per lane, queued ones in brackets."""
    return ", ".join(f"{ln['lane_id']} {ln['vehicles']}" + (f" ({ln['queue_veh']} queued)" if ln["queue_veh"] else "")
                     for ln in doc.get("lanes", []))


class _Printer:
    """Prints statistics and decisions as they arrive; keeps the statistics for the chart.

    Presence messages (every second) are not printed; the latest is shown with each phase change,
    which is printed once, when the next phase gets its green.
    """

    def __init__(self, port: int):
        self.stats: list[dict[str, Any]] = []
        self.decisions = 0
        self.phase_changes = 0
        self.presence_seen = 0
        self.presence: dict[str, Any] | None = None
        self.phase_interval = "green"
        self.phase_ending = "?"
        self.last_decision_at = 0.0
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
                queue_m = {z.get("lane"): z.get("queue_m") for z in doc.get("zones", [])}
                queues = "  ".join(
                    f"{ln['lane_id']} {(ln.get('queue_veh') or {}).get('max', 0)}"
                    + (f" / {queue_m[ln['lane_id']]['max']:.0f} m" if queue_m.get(ln["lane_id"]) else "")
                    for ln in doc.get("lanes", []))
                if queues:
                    print(f"         queues (longest, vehicles / metres from the stop line)  {queues}", flush=True)
            elif kind == "presence" and isinstance(doc, dict):
                self.presence_seen += 1
                self.presence = doc
            elif topic[1] == "signals" and kind == "phase" and isinstance(doc, dict):
                self.phase_interval = str(doc.get("interval"))
                if doc.get("interval") == "yellow":
                    self.phase_ending = str(doc.get("phase"))
                elif doc.get("interval") == "green":
                    self.phase_changes += 1
                    seen = f"; lanes in view: {_lanes_now(self.presence)}" if self.presence else ""
                    print(f"  signal phase {topic[2]}: {self.phase_ending} -> {doc.get('phase')} green "
                          f"({doc.get('reason')}){seen}", flush=True)
            elif kind == "health" and isinstance(doc, dict):
                print(f"  health {doc['camera_id']}: {doc['state']}, {doc['frames_processed']} frames, "
                      f"{doc['fps']} fps, spool {doc['spool_depth']}", flush=True)
            elif topic[1] == "signals" and kind == "plan" and isinstance(doc, dict):
                self.decisions += 1
                self.last_decision_at = time.monotonic()
                greens = ", ".join(f"{p.get('id')} {p.get('green_s', 0):.0f} s" for p in doc.get("phases", []))
                print(f"  signal plan {topic[2]}: cycle {doc.get('cycle_s', 0):.0f} s ({greens})", flush=True)
            elif topic[1] == "lighting" and kind == "set" and isinstance(doc, dict):
                self.decisions += 1
                self.last_decision_at = time.monotonic()
                print(f"  lighting {topic[2]}: level {doc.get('level')}", flush=True)
            elif topic[1] == "services" and isinstance(doc, dict):
                self.decisions += 1
                self.last_decision_at = time.monotonic()
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


def _controller_api(http_port: int, path: str, post: bool = False) -> dict[str, Any]:
    """GET (or POST) the controller's API on loopback (no token needed there); {} when it does not answer."""
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}{path}", data=b"{}" if post else None,
                                 method="POST" if post else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return dict(json.load(resp))
    except (OSError, ValueError):
        return {}


def _last_round(printer: _Printer, http_port: int, timeout: float = 15.0) -> None:
    """One more decision round on the last interval: once the controller has stored every statistics
    message printed, ask it for a round now (POST /api/decide) and wait for its decisions to arrive."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ingest = _controller_api(http_port, "/api/status").get("ingest", {})
        if ingest.get("stored", 0) + ingest.get("duplicate", 0) >= len(printer.stats):
            break
        time.sleep(0.2)
    asked = time.monotonic()
    if not _controller_api(http_port, "/api/decide", post=True):
        return
    while time.monotonic() < min(end, asked + 5):
        with printer.lock:
            if printer.last_decision_at > asked:
                return
        time.sleep(0.1)


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
        source, layout, truth = _synthetic(out, args.seconds, args.seed)
        camera, live = "junction", True
        true_total = len(truth.get("crossings", []))
    else:
        model, source = Path(args.model).resolve(), Path(args.source).resolve()
        for p in (model, source):
            if not p.is_file():
                raise SystemExit(f"demo: file not found: {p}")
        layout, camera, live, true_total = {"lines": _middle_line(source)}, "camera", False, None
    lines = layout["lines"]
    try:
        broker = LocalBroker(work, max_queued_messages=1000, verbose=False)
    except MosquittoNotFound as exc:
        raise SystemExit(f"demo: {exc}; bash scripts/demo.sh installs it for you") from None
    port = broker.port
    procs: list[subprocess.Popen[bytes]] = []
    printer = None
    try:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        printer = _Printer(port)
        print(f"demo: broker on 127.0.0.1:{port}; everything the agent and controller publish under "
              f"'{PREFIX}/#' is printed below", flush=True)
        http_port = None
        if not args.no_controller:
            http_port = free_port()
            ccfg = _controller_config(work, port, camera, lines, http_port, layout.get("zones"))
            procs.append(subprocess.Popen([sys.executable, "-m", "edge_agent", "--log-level", "WARNING",
                                           "controller", "-c", str(ccfg)], env=env))
            print(f"demo: controller running; dashboard at http://127.0.0.1:{http_port}/", flush=True)
        # the synthetic clip plays as a live camera: at its frame rate, its clock on the wall clock
        start = _live_start(time.time()) if live else "2024-05-06T08:00:00Z"
        agent_cfg = {
            "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "demo-node", "topic_prefix": PREFIX},
            "model": {"path": str(model), "confidence": 0.1},
            "statistics": {"interval_s": INTERVAL_S},
            "spool": {"dir": str(work / "spool")},
            "health": {"interval_s": 5},
            "cameras": [{"id": camera, "source": str(source), "start_time": start, "realtime": live, **layout}],
        }
        (work / "agent.yaml").write_text(yaml.safe_dump(agent_cfg, sort_keys=False))
        if live:
            zones = ", ".join(z["lane"] for z in layout.get("zones", []) if z.get("lane"))
            print(f"demo: the clip plays as a live camera from {start} (real time); lane zones {zones} report "
                  f"presence every second", flush=True)
        annotated = out / "annotated.mp4"
        agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "--log-level", "WARNING", "run", "-c",
                                  str(work / "agent.yaml"), "--annotate", str(annotated)], env=env)
        rc = agent.wait()
        ingest: dict[str, Any] = {}
        if http_port is not None:
            _last_round(printer, http_port)
            time.sleep(0.5)  # the last decisions' messages
            end = time.monotonic() + 8  # a phase change under way: let the next phase get its green
            while printer.phase_interval != "green" and time.monotonic() < end:
                time.sleep(0.1)
            ingest = _controller_api(http_port, "/api/status").get("ingest", {})
        chart = out / "counts.png"
        draw_chart(printer.stats, chart)
        stats_file = out / "stats.jsonl"
        stats_file.write_text("".join(json.dumps(doc, sort_keys=True) + "\n" for doc in printer.stats))
        counted = sum(ln[d]["total"] for doc in printer.stats for ln in doc["lines"] for d in ("in", "out"))
        print(f"demo: {len(printer.stats)} statistics messages, {counted} crossings counted"
              + (f" (the generator's ground truth: {true_total})" if true_total is not None else "")
              + f", {printer.decisions} decisions", flush=True)
        if ingest and live:
            print(f"demo: the controller took {ingest.get('presence', 0)} presence messages "
                  f"({printer.presence_seen} published), {printer.phase_changes} phase changes; "
                  f"{ingest.get('refused', 0)} messages refused", flush=True)
        print(f"demo: annotated video {annotated}, chart {chart}, statistics {stats_file}", flush=True)
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
