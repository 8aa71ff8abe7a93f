"""Acknowledged only once stored: a controller killed with statistics received but not yet committed loses none.

A real mosquitto and a real controller process. The test holds SQLite's write lock so that the controller's
writer cannot commit, publishes statistics (QoS 1), waits until the controller has received all of them (its
API's ingest counters), kills it with SIGKILL, and checks that nothing was stored. Restarted with the same
client id, the controller resumes its MQTT session, the broker sends the unacknowledged messages again and every
one is stored exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from conftest import ROOT, Broker, free_port
from test_controller_support import T0, stats_bytes

N = 30


def start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([sys.executable, "-m", "edge_agent.controller", "-c", str(cfg)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=log.open("w"), env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 30
    while "subscribed to" not in log.read_text():
        assert p.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return p


def received(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as r:
        return int(json.loads(r.read())["ingest"].get("received", 0))


def stored(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT dedupe_key FROM stats")]
    finally:
        con.close()


def test_a_killed_controller_loses_no_acknowledged_statistics(tmp_path: Path) -> None:
    broker = Broker(tmp_path, extra="max_inflight_messages 1000")  # the setting the controller needs (mqtt_io.py)
    api = free_port()
    db = tmp_path / "ctrl.db"
    cfg = tmp_path / "ctrl.yaml"
    cfg.write_text(yaml.safe_dump({
        "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": "city", "client_id": "ctrl-crash",
                 "session_expiry_s": 300},
        "store": {"sqlite": str(db)}, "control": {"decide": False}, "forecast": {"enabled": False},
        "http": {"host": "127.0.0.1", "port": api}}))
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub", protocol=MQTTProtocolVersion.MQTTv5)
    procs: list[subprocess.Popen[bytes]] = []
    lock = None
    try:
        procs.append(start(cfg, tmp_path / "first.log"))
        lock = sqlite3.connect(db, timeout=30, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the controller's writer now waits for the write lock
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        msgs = [stats_bytes("cam-n", T0 + timedelta(minutes=k), {"stop": (k % 7, 1)}) for k in range(N)]
        for info in [pub.publish(t, p, qos=1) for t, p in msgs]:
            info.wait_for_publish(10)
        deadline = time.monotonic() + 20
        while received(api) < N:
            assert time.monotonic() < deadline, f"the controller received {received(api)} of {N} messages"
            time.sleep(0.1)
        procs[0].send_signal(signal.SIGKILL)  # a crash: received, not stored, so not acknowledged
        procs[0].wait(10)
        lock.execute("ROLLBACK")
        lock.close()
        lock = None
        assert stored(db) == []
        procs.append(start(cfg, tmp_path / "second.log"))  # same client id: the session (and its messages) resume
        deadline = time.monotonic() + 20
        while len(stored(db)) < N and time.monotonic() < deadline:
            time.sleep(0.1)
        keys = stored(db)
        assert len(keys) == N == len(set(keys)), (len(keys), len(set(keys)))
        assert "session resumed" in (tmp_path / "second.log").read_text()
    finally:
        if lock is not None:
            lock.close()
        pub.loop_stop()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(20)
        broker.stop()
