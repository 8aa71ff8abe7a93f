"""Soak test: the agent on a looping real video for a long time while the broker bounces.

Starts a private mosquitto (persistence on) and a persistent-session subscriber,
runs ``edge-agent run`` on ``../shared/data/vtest.avi`` looping with 10-second
intervals, stops the broker for ``--down`` seconds every ``--bounce`` seconds,
samples the agent's resident memory, and at the end stops the agent with
SIGTERM and checks that the subscriber holds every record the agent logged,
once, in order, with no gap in ``seq``. Exits non-zero on a lost record or on
memory growth above ``--max-growth-mb`` between the first and last quarter.

    .venv/bin/python scripts/soak.py --minutes 10            # about 11 minutes
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from agent_support import LogReader, Subscriber, agent, logged_records, write_config  # noqa: E402
from conftest import SHARED, Broker  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long the agent runs")
    ap.add_argument("--bounce", type=float, default=60.0, help="seconds between broker stops")
    ap.add_argument("--down", type=float, default=10.0, help="seconds the broker stays down each time")
    ap.add_argument("--fps-cap", type=float, default=5.0, help="frames per second of video processed")
    ap.add_argument("--max-growth-mb", type=float, default=30.0, help="allowed RSS growth (first vs last quarter)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    video, model = SHARED / "data" / "vtest.avi", SHARED / "models" / "yolov8n_int8.onnx"
    if not video.is_file() or not model.is_file():
        print(f"soak: needs {video} and {model}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="edge-soak-"))
    (work / "broker").mkdir()
    broker = Broker(work / "broker", persistence=True)
    sub = Subscriber(broker, persistent=True, client_id="soak-subscriber")
    cfg = write_config(work, broker, model, video, camera_fps_cap=args.fps_cap, camera_loop=True,
                       spool={"dir": str(work / "spool"), "drain_s": 120})
    proc = agent(cfg)
    log = LogReader(proc)
    samples: list[tuple[float, float]] = []
    bounces = 0
    t0 = time.monotonic()
    next_bounce = t0 + args.bounce
    try:
        while time.monotonic() - t0 < args.minutes * 60:
            if proc.poll() is not None:
                print(log.text()[-3000:], file=sys.stderr)
                print("soak: the agent exited early", file=sys.stderr)
                return 1
            samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
            if time.monotonic() >= next_bounce:
                broker.stop()
                time.sleep(args.down)
                broker.start()
                bounces += 1
                next_bounce += args.bounce
                print(f"soak: {time.monotonic() - t0:6.0f} s  broker bounced ({bounces})  rss {samples[-1][1]:.0f} MB  "
                      f"records {log.text().count('interval record')}", flush=True)
            time.sleep(5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
        logged = logged_records(log.finish())
        sub.wait_for(lambda m: len(sub.unique_stats()) >= len(logged), 120)
    finally:
        proc.kill()
        sub.close()
        broker.stop()
    got = sub.unique_stats()
    seqs = [d["seq"] for d in got]
    ids = {d["message_id"] for d in got}
    lost = [d["seq"] for d in logged if d["message_id"] not in ids]
    gaps = seqs != list(range(1, len(seqs) + 1))
    quarter = max(1, len(samples) // 4)
    first_q = sorted(r for _, r in samples[:quarter])[quarter // 2]
    last_q = sorted(r for _, r in samples[-quarter:])[quarter // 2]
    figures = {
        "minutes": round((samples[-1][0] if samples else 0) / 60, 1), "broker_bounces": bounces,
        "records_logged": len(logged), "records_received_unique": len(got),
        "duplicates_received": len(sub.stats()) - len(got), "lost": lost, "seq_gap": gaps,
        "rss_mb_first_quarter_median": round(first_q, 1), "rss_mb_last_quarter_median": round(last_q, 1),
        "rss_mb_max": round(max(r for _, r in samples), 1),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**figures, "rss_samples": samples}, indent=1))
    ok = not lost and not gaps and last_q - first_q <= args.max_growth_mb
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
