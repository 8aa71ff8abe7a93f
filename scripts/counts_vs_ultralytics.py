#!/usr/bin/env python3
"""Line counts on vtest.avi: the agent against Ultralytics' own tracking, both against the hand count.

    .venv/bin/python scripts/counts_vs_ultralytics.py --ultralytics-python /tmp/bench-venvs/ultralytics/bin/python

Issue 7 asks for throughput "with identical or better counts" than the tool a user would pick
instead. Both contenders get the same ONNX file, confidence, NMS IoU and classes
(``configs/vtest.yaml``); the agent runs its own detector and tracker, Ultralytics runs
``YOLO(model).track(..., tracker=bytetrack.yaml or botsort.yaml)``. The same line counter
(``edge_agent.counting.LineCounter``, the lines of ``configs/vtest.yaml``) then counts both
track streams, and each is matched one-to-one with the hand count in
``tests/data/vtest_handcount_*.csv`` (same direction, within 15 frames), as
``tests/test_vtest_handcount.py`` does for the agent.

Ultralytics runs in its own Python (an environment with ``ultralytics``, e.g. the ``export``
extra); nothing is downloaded (``YOLO_OFFLINE=1``, a local ONNX file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def ultralytics_tracks(model: str, video: str, conf: float, iou: float, classes: list[int], tracker: str,
                       out: str) -> None:
    """(Runs in the Ultralytics Python.) One JSON line per frame: ids, boxes and classes of its tracks."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    yolo = YOLO(model, task="detect")
    with open(out, "w", encoding="utf-8") as f:
        for res in yolo.track(video, stream=True, persist=True, tracker=tracker, conf=conf, iou=iou,
                              classes=classes, verbose=False):
            b = res.boxes
            ids = [] if b.id is None else b.id.int().tolist()
            rows = list(zip(ids, b.xyxy.tolist(), b.cls.int().tolist())) if ids else []
            f.write(json.dumps(rows) + "\n")


def count(frames: list[list[tuple[int, list[float], int]]], fps: float) -> dict[str, list[Any]]:
    """The configured line counters over per-frame (id, box, class) tracks."""
    import numpy as np
    from test_vtest_handcount import CONFIG, LINES, Crossing

    from edge_agent.config import load_config
    from edge_agent.counting import LineCounter
    from edge_agent.types import Tracks

    cfg = load_config(CONFIG, check_files=False)
    cam = next(c for c in cfg.cameras if c.id == "campus")
    names = [f"class{i}" for i in range(80)]
    counters = [LineCounter(ln.id, ln.p1, ln.p2, ln.in_side, cam.id, names, ln.anchor, ln.hysteresis_px)
                for ln in cam.lines]
    out: dict[str, list[Any]] = {line: [] for line in LINES}
    for k, rows in enumerate(frames):
        n = len(rows)
        ids, boxes = np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.float32)
        tracks = Tracks(ids, boxes.reshape(n, 4), np.ones(n, np.float32), np.array([r[2] for r in rows], np.int64),
                        np.arange(n, dtype=np.int64), np.zeros((n, 2), np.float32))
        for c in counters:
            for e in c.update(tracks, k / fps):
                out[e.line_id].append(Crossing(k, e.direction.value))
    return out


def agent_tracks(model: str, video: str) -> list[list[tuple[int, list[float], int]]]:
    """The agent's detector and tracker with configs/vtest.yaml's settings, per frame."""
    import cv2
    from test_vtest_handcount import CONFIG

    from edge_agent.config import load_config
    from edge_agent.detection import Detector
    from edge_agent.pipeline import tracker_config
    from edge_agent.tracking import Tracker

    cfg = load_config(CONFIG, check_files=False)
    det = Detector(model, confidence=cfg.model.confidence, iou=cfg.model.iou, classes=cfg.model.classes, device="cpu")
    tracker = Tracker(tracker_config(cfg.tracker))
    cap = cv2.VideoCapture(video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            return frames
        t = tracker.update(det(img), len(frames) / fps, frame_size=(img.shape[1], img.shape[0]))
        frames.append(list(zip(t.track_id.tolist(), t.xyxy.tolist(), t.class_id.tolist())))


def report(name: str, crossings: dict[str, list[Any]]) -> tuple[int, int, int, int]:
    """Print per line: counts by direction, matched, missed, extra; return (hand, matched, missed, extra) totals."""
    from test_vtest_handcount import hand_count, match

    tot = [0, 0, 0, 0]
    for line, got in crossings.items():
        hand = hand_count(line)
        pairs = match(hand, got)
        counts = {d: (sum(c.direction == d for c in hand), sum(c.direction == d for c in got)) for d in ("in", "out")}
        print(f"  {name:<22} {line:<5} in {counts['in'][1]:2d} (hand {counts['in'][0]}), out {counts['out'][1]:2d} "
              f"(hand {counts['out'][0]}); matched {len(pairs)} of {len(hand)}, extra {len(got) - len(pairs)}")
        tot = [tot[0] + len(hand), tot[1] + len(pairs), tot[2] + len(hand) - len(pairs), tot[3] + len(got) - len(pairs)]
    return tot[0], tot[1], tot[2], tot[3]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(SHARED / "models" / "yolov8n_int8.onnx"))
    ap.add_argument("--video", default=str(SHARED / "data" / "vtest.avi"))
    ap.add_argument("--ultralytics-python", required=True, help="a Python that has ultralytics")
    ap.add_argument("--trackers", default="bytetrack.yaml,botsort.yaml")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--conf", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--iou", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--classes", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        ultralytics_tracks(a.model, a.video, a.conf, a.iou, json.loads(a.classes), a.role, a.out)
        return 0

    from test_vtest_handcount import CONFIG

    from edge_agent.config import load_config
    from edge_agent.detection import Detector

    cfg = load_config(CONFIG, check_files=False)
    names = Detector(a.model, device="cpu").names
    classes = [names.index(c) for c in cfg.model.classes or names]
    print(f"vtest.avi, {Path(a.model).name}, confidence {cfg.model.confidence}, NMS IoU {cfg.model.iou}, "
          f"classes {cfg.model.classes}; lines of configs/vtest.yaml; hand count tests/data/vtest_handcount_*.csv")
    results = {"agent": report("agent", count(agent_tracks(a.model, a.video), 10.0))}
    for tracker in a.trackers.split(","):
        with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as tmp:
            path = tmp.name
        subprocess.run([a.ultralytics_python, __file__, "--role", tracker, "--out", path, "--model", a.model,
                        "--video", a.video, "--ultralytics-python", "-", "--conf", str(cfg.model.confidence),
                        "--iou", str(cfg.model.iou), "--classes", json.dumps(classes)], check=True)
        with open(path, encoding="utf-8") as f:
            frames = [[(r[0], r[1], r[2]) for r in json.loads(line)] for line in f]
        os.unlink(path)
        results[f"ultralytics {tracker.split('.')[0]}"] = report(f"ultralytics {tracker.split('.')[0]}",
                                                                count(frames, 10.0))
    print("total (hand crossings, matched, missed, extra):")
    for name, (hand, matched, missed, extra) in results.items():
        print(f"  {name:<22} {matched} of {hand} matched, {missed} missed, {extra} extra")
    return 0


if __name__ == "__main__":
    sys.exit(main())
