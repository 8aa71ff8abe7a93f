#!/usr/bin/env python3
"""Controller ingest benchmark through a real mosquitto, in one run.

    .venv/bin/python scripts/bench_controller.py [--messages 20000] [--cameras 50] [--rounds 3]

Starts mosquitto on a free port (``max_queued_messages 0``, ``max_inflight_messages 0``:
the broker must not drop QoS 1 messages for a busy subscriber; mosquitto's default
queue of 1000 would, and the controller acknowledges a message only once it is
stored, so its in-flight window must hold a batch), then for each consumer below
``--publishers`` publisher processes send the same N statistics messages (valid
interval-stats.v1, QoS 1, encoded before the clock starts) as fast as they can,
and prints:

1. bare:   a paho subscriber that only parses the JSON (the ceiling of a Python
           consumer on this machine);
2. one:    one controller replica (SQLite, shared subscription), rate stored with
           zero loss and end-to-end lag p50/p95 (publisher's send -> row committed);
3. two:    two replicas in one share group on one SQLite file, their combined rate,
           and a check that every message is stored exactly once.

The three take turns for ``--rounds`` rounds and the ratios are the medians of each
round's, so that a change of load on a shared machine moves both sides of a ratio.

With ``--backlog`` each consumer is paused (SIGSTOP) while the publishers send, then resumed
and timed until the last message is stored: the drain rate of a backlog (a controller coming
back after an outage, or catching up), with no publisher competing for the cores.

Consumers run as their own processes (``python -m edge_agent.controller``), so the
GIL of one does not slow another. The rates are messages from the first to the
last one received (bare) or committed (controller).

For each run it also prints the CPU time per message of the broker, the
publishers and the consumer(s) (from /proc), and what they add up to: on a
machine with C cores no consumer can go faster than C / (total CPU s per
message) while the publishers and the broker share those cores with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PREFIX = "bench"

from edge_agent.localbroker import LocalBroker  # noqa: E402


def payloads(n: int, cameras: int) -> list[tuple[str, bytes, str]]:
    """(topic, payload, dedupe key) of n distinct statistics messages."""
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        cam = f"cam-{i % cameras:03d}"
        start = t0 + timedelta(seconds=10 * (i // cameras))
        s, e = start.isoformat().replace("+00:00", "Z"), (start + timedelta(seconds=10)).isoformat().replace(
            "+00:00", "Z")
        doc = {"schema": "edge-agent/interval-stats", "schema_version": 1, "agent_version": "0.1.0",
               "node_id": "bench-node", "camera_id": cam,
               "interval": {"start": s, "end": e, "length_s": 10, "observed_s": 10, "partial": False},
               "lines": [{"line_id": f"l{j}", "in": {"total": 3, "by_class": {"car": 2, "person": 1}, "vehicles": 2,
                                                     "flow_veh_h": 720.0},
                          "out": {"total": 1, "by_class": {"car": 1}, "vehicles": 1, "flow_veh_h": 360.0}}
                         for j in range(2)],
               "frames": {"processed": 100, "dropped": 0}, "inference_ms_mean": 12.5}
        out.append((f"{PREFIX}/{cam}/stats", json.dumps(doc, separators=(",", ":")).encode(), f"{cam}|{s}|{e}|0"))
    return out


# ---------------------------------------------------------------- child roles


def role_publish(port: int, n: int, cameras: int, times_file: str, part: int, parts: int, go_file: str) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    msgs = payloads(n, cameras)[part::parts]  # encoded before the clock starts
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{part}-{time.monotonic_ns()}",
                    protocol=MQTTProtocolVersion.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    Path(f"{times_file}.ready").write_text("ok")
    while not Path(go_file).exists():  # all publishers start together
        time.sleep(0.002)
    sent = {}
    cpu0 = time.process_time()
    t0 = time.time()
    infos = []
    for topic, payload, key in msgs:
        sent[key] = time.time()
        infos.append(c.publish(topic, payload, qos=1))
    for i in infos:
        i.wait_for_publish(120)
    t1 = time.time()
    cpu = time.process_time() - cpu0
    c.disconnect()
    c.loop_stop()
    Path(times_file).write_text(json.dumps({"sent": sent, "start": t0, "end": t1, "cpu_s": cpu}))


def role_bare(port: int, n: int, ready_file: str, out_file: str) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    got = {"n": 0, "first": 0.0, "last": 0.0, "cpu_s": 0.0}

    def on_message(client, userdata, msg):  # type: ignore[no-untyped-def]
        json.loads(msg.payload)
        now = time.time()
        if got["n"] == 0:
            got["first"] = now
        got["n"] += 1
        got["last"] = now

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTProtocolVersion.MQTTv5)
    c.on_message = on_message
    c.on_subscribe = lambda *a: Path(ready_file).write_text("ok")
    c.on_connect = lambda cl, *a: cl.subscribe(f"$share/bare/{PREFIX}/+/stats", qos=1)
    c.connect("127.0.0.1", port)
    deadline = time.time() + 300
    while got["n"] < n and time.time() < deadline:
        c.loop(0.1)
    got["cpu_s"] = time.process_time()
    Path(out_file).write_text(json.dumps(got))


# ---------------------------------------------------------------- orchestration


def me(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish(port: int, n: int, cameras: int, tmp: Path, parts: int) -> dict[str, Any]:
    """N messages from ``parts`` publisher processes started together; send times, span and their CPU."""
    tag = time.monotonic_ns()
    go = tmp / f"go-{tag}"
    files = [tmp / f"sent-{tag}-{i}.json" for i in range(parts)]
    procs = [subprocess.Popen(me("--role", "publish", "--port", str(port), "--messages", str(n), "--cameras",
                                 str(cameras), "--file", str(f), "--part", str(i), "--publishers", str(parts),
                                 "--ready", str(go))) for i, f in enumerate(files)]
    while not all(Path(f"{f}.ready").exists() for f in files):
        time.sleep(0.01)
    go.write_text("go")
    for p in procs:
        if p.wait(600) != 0:
            raise SystemExit("a publisher failed")
    docs = [json.loads(f.read_text()) for f in files]
    sent: dict[str, float] = {}
    for d in docs:
        sent.update(d["sent"])
    return {"sent": sent, "start": min(d["start"] for d in docs), "end": max(d["end"] for d in docs),
            "cpu_s": sum(d["cpu_s"] for d in docs)}


def bench_bare(port: int, n: int, cameras: int, tmp: Path, parts: int, broker_pid: int,
               backlog: bool = False) -> dict[str, float]:
    tag = time.monotonic_ns()
    ready, out = tmp / f"bare-{tag}.ready", tmp / f"bare-{tag}.json"
    p = subprocess.Popen(me("--role", "bare", "--port", str(port), "--messages", str(n), "--file", str(out),
                            "--ready", str(ready)))
    while not ready.exists():
        time.sleep(0.05)
    b0 = cpu_s(broker_pid)
    if backlog:
        p.send_signal(signal.SIGSTOP)
    sent = publish(port, n, cameras, tmp, parts)
    resumed = time.time()
    if backlog:
        p.send_signal(signal.SIGCONT)
    p.wait(300)
    broker_cpu = cpu_s(broker_pid) - b0
    got = json.loads(out.read_text())
    if got["n"] != n:
        print(f"  bare subscriber lost messages: {got['n']} of {n}")
    span = got["last"] - (resumed if backlog else got["first"])
    return {"rate": got["n"] / span, "publisher_rate": n / (sent["end"] - sent["start"]),
            "cpu_consumer": got["cpu_s"] / n, "cpu_publishers": sent["cpu_s"] / n, "cpu_broker": broker_cpu / n}


def controller_cfg(tmp: Path, port: int, name: str, db: Path) -> Path:
    cfg = {"mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": PREFIX, "client_id": name,
                    "share_group": "bench"},
           "store": {"sqlite": str(db)}, "control": {"decide": False}, "http": {"enabled": False}}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def bench_controllers(port: int, n: int, cameras: int, tmp: Path, replicas: int, parts: int,
                      broker_pid: int, tag: str = "", backlog: bool = False) -> dict[str, float]:
    db = tmp / f"ctrl-{replicas}{tag}.db"
    procs = []
    for r in range(replicas):
        log = tmp / f"ctrl-{replicas}-{r}{tag}.log"
        p = subprocess.Popen([sys.executable, "-m", "edge_agent.controller", "-c",
                              str(controller_cfg(tmp, port, f"bench-ctrl-{replicas}-{r}{tag}", db))],
                             stdout=subprocess.DEVNULL, stderr=log.open("w"), cwd=ROOT)
        procs.append((p, log))
    for _, log in procs:
        while "subscribed to" not in log.read_text():
            time.sleep(0.05)
    c0 = [cpu_s(p.pid) for p, _ in procs]
    b0 = cpu_s(broker_pid)
    for p, _ in procs if backlog else ():
        p.send_signal(signal.SIGSTOP)
    sent = publish(port, n, cameras, tmp, parts)
    resumed = time.time()
    for p, _ in procs if backlog else ():
        p.send_signal(signal.SIGCONT)
    con = sqlite3.connect(db)
    deadline = time.time() + 300
    # MAX(id) is one look at the end of the primary key; COUNT(*) scans an index, and polling it
    # every 50 ms took cores from the replicas exactly when they had none to spare (two of them)
    while time.time() < deadline and not ((con.execute("SELECT MAX(id) FROM stats").fetchone()[0] or 0) >= n
                                          and con.execute("SELECT COUNT(*) FROM stats").fetchone()[0] >= n):
        dead = [log for p, log in procs if p.poll() is not None]
        if dead:
            raise SystemExit(f"a controller exited before storing every message:\n{dead[0].read_text()[-2000:]}")
        time.sleep(0.05)
    consumer_cpu = sum(cpu_s(p.pid) for p, _ in procs) - sum(c0)
    broker_cpu = cpu_s(broker_pid) - b0
    for p, _ in procs:
        p.send_signal(signal.SIGTERM)
    for p, _ in procs:
        p.wait(60)
    rows = con.execute("SELECT dedupe_key, received_at, stored_at FROM stats").fetchall()
    stored = len(rows)
    distinct = len({r[0] for r in rows})
    first_rx = min(r[1] for r in rows)
    last_commit = max(r[2] for r in rows)
    lags = sorted(r[2] - sent["sent"][r[0]] for r in rows)
    pub_rate = n / (sent["end"] - sent["start"])
    start = resumed if backlog else first_rx
    return {"stored": stored, "distinct": distinct, "rate": stored / (last_commit - start),
            "p50_ms": 1000 * lags[len(lags) // 2], "p95_ms": 1000 * lags[int(len(lags) * 0.95)],
            "publisher_rate": pub_rate, "cpu_consumer": consumer_cpu / n, "cpu_publishers": sent["cpu_s"] / n,
            "cpu_broker": broker_cpu / n}


def cpu_line(r: dict[str, float]) -> str:
    """CPU per message of each party and the rate their sum allows on this machine's cores."""
    total = r["cpu_consumer"] + r["cpu_publishers"] + r["cpu_broker"]
    cores = os.cpu_count() or 1
    return (f"    CPU us/msg: consumer(s) {1e6 * r['cpu_consumer']:.0f}, publishers {1e6 * r['cpu_publishers']:.0f}, "
            f"broker {1e6 * r['cpu_broker']:.0f}; total {1e6 * total:.0f} -> at most {cores / total:.0f} msg/s "
            f"on {cores} core(s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--cameras", type=int, default=50)
    ap.add_argument("--publishers", type=int, default=2, help="publisher processes sending the messages together")
    ap.add_argument("--rounds", type=int, default=3, help="turns of bare, one and two replicas (ratios: median)")
    ap.add_argument("--backlog", action="store_true",
                    help="consumers paused while the messages are published, then timed draining the backlog")
    ap.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--role", choices=["publish", "bare"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--ready", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role == "publish":
        role_publish(a.port, a.messages, a.cameras, a.file, a.part, a.publishers, a.ready)
        return 0
    if a.role == "bare":
        role_bare(a.port, a.messages, a.ready, a.file)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-ctrl-"))
    # the broker must not drop QoS 1 messages for a busy subscriber: no queue or in-flight limit
    broker = LocalBroker(tmp, extra="max_inflight_messages 0", max_queued_messages=0, verbose=False)
    port = broker.port
    try:
        print(f"{a.messages} statistics messages from {a.cameras} cameras, QoS 1, {a.publishers} publisher "
              f"process(es), mosquitto on :{port}, {os.cpu_count()} CPU(s)"
              + ("; backlog: consumers paused (SIGSTOP) while publishing, rates from resuming to the last "
                 "message (lag: includes the pause)" if a.backlog else ""))
        assert broker.process is not None
        bpid = broker.process.pid
        ratios: dict[str, list[float]] = {"one/bare": [], "two/one": []}
        for k in range(a.rounds):  # the three take turns, so that each ratio compares runs minutes apart at most
            print(f"-- round {k + 1} of {a.rounds}")
            bare_r = bench_bare(port, a.messages, a.cameras, tmp, a.publishers, bpid, a.backlog)
            bare = bare_r["rate"]
            print(f"bare paho subscriber (json.loads only): {bare:8.0f} msg/s  <- ceiling; publishers "
                  f"{bare_r['publisher_rate']:.0f} msg/s")
            print(cpu_line(bare_r))
            one = bench_controllers(port, a.messages, a.cameras, tmp, 1, a.publishers, bpid, f"{k}", a.backlog)
            print(f"controller x1 (SQLite):                  {one['rate']:8.0f} msg/s  = {one['rate'] / bare:.2f} x "
                  f"ceiling; stored {one['stored']}/{a.messages} (loss {a.messages - one['distinct']}); lag p50 "
                  f"{one['p50_ms']:.0f} ms, p95 {one['p95_ms']:.0f} ms; publishers {one['publisher_rate']:.0f} msg/s")
            print(cpu_line(one))
            two = bench_controllers(port, a.messages, a.cameras, tmp, 2, a.publishers, bpid, f"{k}", a.backlog)
            gain = two["rate"] / one["rate"]
            print(f"controller x2 (shared subscription):     {two['rate']:8.0f} msg/s  = {gain:.2f} x one; stored "
                  f"{two['stored']} rows, {two['distinct']} distinct of {a.messages} "
                  f"({'exactly once' if two['stored'] == two['distinct'] == a.messages else 'NOT exactly once'}); "
                  f"lag p50 {two['p50_ms']:.0f} ms, p95 {two['p95_ms']:.0f} ms; publishers "
                  f"{two['publisher_rate']:.0f} msg/s")
            print(cpu_line(two))
            ratios["one/bare"].append(one["rate"] / bare)
            ratios["two/one"].append(two["rate"] / one["rate"])
        print("== over the rounds: " + "; ".join(
            f"{name} median {statistics.median(v):.2f} (each {', '.join(f'{x:.2f}' for x in v)})"
            for name, v in ratios.items()))
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
