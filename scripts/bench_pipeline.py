"""Throughput of the whole agent against what ONNX Runtime alone can do, measured side by side.

Contenders, each alive in its own process for the whole run and taking turns on
chunks of frames (so a change of machine load hits them alike):

    ceiling   ONNX Runtime ``session.run`` alone on frames letterboxed beforehand
    agent     our pipeline: decode -> letterbox -> infer -> decode/NMS -> track ->
              count -> aggregate -> spool -> publish to a real local mosquitto
    ultralytics  ``YOLO(model).track(...)`` (ByteTrack) on the same ONNX file, when
              a Python with ultralytics is given (``--ultralytics-python``, e.g. the
              venv made by scripts/setup_bench_envs.sh)

It prints frames/s of each, the ratios agent/ceiling and agent/ultralytics, the
agent's time per stage and each worker's peak resident memory.

    .venv/bin/python scripts/bench_pipeline.py --cycles 6 --chunk 25
    .venv/bin/python scripts/bench_pipeline.py --ultralytics-python /tmp/bench-venvs/ultralytics/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


# ----------------------------------------------------------------------------- workers
def worker(role: str, model: str, video: str, port: int) -> None:
    """Loop: read 'N' on stdin, process N frames, print one JSON line with the time taken."""
    import cv2

    cap = cv2.VideoCapture(video)

    def next_frame():  # type: ignore[no-untyped-def]
        ok, img = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = cap.read()
        return img

    if role == "ceiling":
        from edge_agent.detection import Detector

        det = Detector(model, device="cpu")
        frames = [det.preprocess(next_frame())[0] for _ in range(10)]  # letterboxed beforehand
        k = 0

        def step() -> dict[str, float]:
            nonlocal k
            det.infer(frames[k % len(frames)])
            k += 1
            return {}
    elif role == "agent":
        sys.path.insert(0, str(ROOT))
        from edge_agent.aggregation import IntervalAggregator
        from edge_agent.config import MQTTConfig
        from edge_agent.counting import LineCounter
        from edge_agent.detection import Detector
        from edge_agent.messages import stats_message
        from edge_agent.mqtt import MqttPublisher
        from edge_agent.spool import Spool
        from edge_agent.tracking import Tracker

        det = Detector(model, device="cpu", confidence=0.1)
        trk = Tracker()
        counters = [LineCounter("west", (250, 170), (250, 330), "left", "bench", det.names),
                    LineCounter("east", (560, 200), (560, 420), "left", "bench", det.names)]
        agg = IntervalAggregator("bench", ["west", "east"], 10)
        spool = Spool(Path(tempfile.mkdtemp()) / "spool.sqlite")
        pub = MqttPublisher(MQTTConfig(host="127.0.0.1", port=port), "bench-agent", "bench/bench/status", spool)
        stages = {"decode": 0.0, "preprocess": 0.0, "infer": 0.0, "postprocess": 0.0, "track_count": 0.0,
                  "aggregate_publish": 0.0}
        ts = [0.0]

        def step() -> dict[str, float]:
            t0 = time.perf_counter()
            img = next_frame()
            t1 = time.perf_counter()
            tensor, lb = det.preprocess(img)
            t2 = time.perf_counter()
            out = det.infer(tensor)
            t3 = time.perf_counter()
            dets = det.postprocess(out, lb, img.shape)
            t4 = time.perf_counter()
            tracks = trk.update(dets, ts[0], frame_size=(img.shape[1], img.shape[0]))
            events = [e for c in counters for e in c.update(tracks, ts[0])]
            t5 = time.perf_counter()
            for rec in agg.add_frame(ts[0], det.last_inference_ms, 0, events):
                pub.publish(stats_message(rec, "bench", "bench", {"car", "bus", "truck"}))
            t6 = time.perf_counter()
            ts[0] += 0.1
            for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                stages[key] += dt
            return stages
    elif role == "ultralytics":
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        yolo = YOLO(model, task="detect")

        def step() -> dict[str, float]:
            yolo.track(next_frame(), persist=True, tracker="bytetrack.yaml", conf=0.1, verbose=False)
            return {}
    else:
        raise SystemExit(f"unknown role {role}")

    step()  # warm-up
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        n = int(line)
        t0, c0 = time.perf_counter(), time.process_time()
        spent: dict[str, float] = {}
        for _ in range(n):
            spent = step()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": rss, "stages": spent}), flush=True)


# ----------------------------------------------------------------------------- coordinator
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(SHARED / "models" / "yolov8n_int8.onnx"))
    ap.add_argument("--video", default=str(SHARED / "data" / "vtest.avi"))
    ap.add_argument("--cycles", type=int, default=6, help="turns each contender gets")
    ap.add_argument("--chunk", type=int, default=25, help="frames per turn")
    ap.add_argument("--ultralytics-python", help="a Python that has ultralytics (optional contender)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--worker", nargs=4, metavar=("ROLE", "MODEL", "VIDEO", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        role, model, video, port = args.worker
        worker(role, model, video, int(port))
        return 0

    sys.path.insert(0, str(ROOT))
    from edge_agent.localbroker import LocalBroker

    broker = LocalBroker(Path(tempfile.mkdtemp(prefix="bench-broker-")), verbose=False)
    roles = {"ceiling": sys.executable, "agent": sys.executable}
    if args.ultralytics_python:
        roles["ultralytics"] = args.ultralytics_python
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}
    env = {k: v for k, v in env.items() if v != ""}
    procs = {r: subprocess.Popen([py, __file__, "--worker", r, args.model, args.video, str(broker.port)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for r, py in roles.items()}
    try:
        for r, p in procs.items():
            assert p.stdout is not None
            while True:  # skip whatever a library prints before the worker is ready
                line = p.stdout.readline()
                if not line:
                    raise SystemExit(f"bench: worker {r} failed to start")
                if line.startswith('{"ready"'):
                    break
        totals = {r: {"frames": 0, "wall": 0.0, "rss_mb": 0.0, "stages": {}} for r in procs}
        for _ in range(args.cycles):
            for r, p in procs.items():  # one at a time: each gets the whole machine for its turn
                assert p.stdin is not None and p.stdout is not None
                p.stdin.write(f"{args.chunk}\n")
                p.stdin.flush()
                line = p.stdout.readline()
                while line and not line.startswith('{"wall"'):
                    line = p.stdout.readline()
                if not line:
                    raise SystemExit(f"bench: worker {r} died")
                res = json.loads(line)
                t = totals[r]
                t["frames"] += args.chunk
                t["wall"] += res["wall"]
                t["rss_mb"] = res["rss_mb"]
                t["stages"] = res["stages"]
    finally:
        for p in procs.values():
            p.kill()
        broker.stop()
    fps = {r: t["frames"] / t["wall"] for r, t in totals.items()}
    print(f"{'contender':<12} {'frames/s':>9} {'peak RSS MB':>12}")
    for r in totals:
        print(f"{r:<12} {fps[r]:9.2f} {totals[r]['rss_mb']:12.0f}")
    print(f"agent / ceiling = {fps['agent'] / fps['ceiling']:.3f}")
    if "ultralytics" in fps:
        print(f"agent / ultralytics = {fps['agent'] / fps['ultralytics']:.3f}")
    frames = totals["agent"]["frames"] + 1  # the warm-up step is in the stage sums too
    print("agent ms per frame by stage: " + ", ".join(
        f"{k} {v / frames * 1000:.2f}" for k, v in totals["agent"]["stages"].items()))
    if args.json:
        args.json.write_text(json.dumps({"fps": fps, "totals": totals, "chunk": args.chunk,
                                         "cycles": args.cycles}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
