"""End to end: the real model on real video, a real mosquitto, the installed command.

``edge-agent run`` counts people crossing a line across the road in
vtest.avi and publishes interval statistics; a subscriber checks them against
the JSON Schema and against what the agent logged, and that the retained
status turns ``offline`` on a clean stop, on SIGTERM and on SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from conftest import Broker
from edge_agent.messages import validate_stats

PREFIX = "itest"
CAMERA = "campus"


class Subscriber:
    """Collects every message under ``PREFIX/#`` (retained ones included)."""

    def __init__(self, broker: Broker):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, *a: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self.cond.notify_all()

    def wait_for(self, pred: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def stats(self) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p, _ in self.messages if t == f"{PREFIX}/{CAMERA}/stats"]

    def statuses(self) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == f"{PREFIX}/{CAMERA}/status"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture()
def subscriber(mosquitto: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(mosquitto)
    assert sub.wait_for(lambda m: True, 1)
    time.sleep(0.3)  # let the subscription settle
    yield sub
    sub.close()


def retained_status(broker: Broker) -> bytes | None:
    """What a newly connecting client gets as the retained status."""
    sub = Subscriber(broker)
    sub.wait_for(lambda m: any(t.endswith("/status") for t, _, _ in m), 3)
    sub.close()
    found = sub.statuses()
    return found[-1] if found else None


@pytest.fixture(scope="module")
def clip(vtest_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 30 s (300 frames) of vtest.avi, re-encoded losslessly enough (MJPG q95) to keep it short."""
    out = tmp_path_factory.mktemp("clip") / "vtest_30s.avi"
    cap = cv2.VideoCapture(str(vtest_video))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
    for _ in range(300):
        ok, img = cap.read()
        assert ok
        writer.write(img)
    writer.release()
    return out


def write_config(tmp_path: Path, broker: Broker, model: Path, video: Path, realtime: bool = False) -> Path:
    cfg = {
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "itest-node", "topic_prefix": PREFIX},
        "model": {"path": str(model), "classes": ["person", "car"]},
        "statistics": {"interval_s": 10},
        "cameras": [{
            "id": CAMERA, "source": str(video), "start_time": "2024-05-06T08:00:00Z", "realtime": realtime,
            "lines": [{"id": "west", "p1": [250, 170], "p2": [250, 330], "in_side": "left"},
                      {"id": "east", "p1": [560, 200], "p2": [560, 420], "in_side": "left"}],
        }],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def agent(config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def logged_records(log: str) -> list[dict[str, Any]]:
    marker = "interval record "
    return [json.loads(line.split(marker, 1)[1]) for line in log.splitlines() if marker in line]


def test_agent_publishes_valid_statistics_equal_to_its_log(
        tmp_path: Path, mosquitto: Broker, subscriber: Subscriber, coco_model: Path, clip: Path) -> None:
    proc = agent(write_config(tmp_path, mosquitto, coco_model, clip))
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    logged = logged_records(log)
    assert subscriber.wait_for(lambda m: len(subscriber.stats()) >= len(logged) and
                               subscriber.statuses()[-1:] == [b"offline"], 10), log

    received = subscriber.stats()
    assert received == logged  # same records, same order, nothing lost or added
    for doc in received:
        validate_stats(doc)
    assert [d["interval"]["start"] for d in received] == [
        "2024-05-06T08:00:00Z", "2024-05-06T08:00:10Z", "2024-05-06T08:00:20Z"]
    assert [d["interval"]["partial"] for d in received] == [False, False, False]
    assert sum(d["frames"]["processed"] for d in received) == 300
    crossings = sum(line[d]["total"] for doc in received for line in doc["lines"] for d in ("in", "out"))
    assert crossings > 0
    assert all(set(line[d]["by_class"]) <= {"person", "car"} for doc in received for line in doc["lines"]
               for d in ("in", "out"))
    assert subscriber.statuses()[0] == b"online" and subscriber.statuses()[-1] == b"offline"
    assert retained_status(mosquitto) == b"offline"

    # a replay of the same file gives identical statistics
    again = agent(write_config(tmp_path, mosquitto, coco_model, clip))
    log2, _ = again.communicate(timeout=600)
    assert [(d["interval"], d["lines"]) for d in logged_records(log2)] == [(d["interval"], d["lines"])
                                                                         for d in logged]


def test_sigterm_publishes_the_partial_interval(
        tmp_path: Path, mosquitto: Broker, subscriber: Subscriber, coco_model: Path, vtest_video: Path) -> None:
    proc = agent(write_config(tmp_path, mosquitto, coco_model, vtest_video, realtime=True))
    try:
        assert subscriber.wait_for(lambda m: b"online" in subscriber.statuses(), 60)
        time.sleep(4)
        proc.send_signal(signal.SIGTERM)
        log, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, log
    assert subscriber.wait_for(lambda m: subscriber.statuses()[-1:] == [b"offline"], 10), log
    stats = subscriber.stats()
    assert stats and stats[-1]["interval"]["partial"] is True
    assert 0 < stats[-1]["interval"]["observed_s"] < 10
    assert stats == logged_records(log)
    assert retained_status(mosquitto) == b"offline"


def test_sigkill_leaves_the_last_will_offline(
        tmp_path: Path, mosquitto: Broker, subscriber: Subscriber, coco_model: Path, vtest_video: Path) -> None:
    proc = agent(write_config(tmp_path, mosquitto, coco_model, vtest_video, realtime=True))
    try:
        assert subscriber.wait_for(lambda m: b"online" in subscriber.statuses(), 60)
        assert retained_status(mosquitto) == b"online"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert subscriber.wait_for(lambda m: subscriber.statuses()[-1:] == [b"offline"], 30)
    assert retained_status(mosquitto) == b"offline"


def test_bad_config_exits_with_a_clear_message(tmp_path: Path, mosquitto: Broker, coco_model: Path,
                                                clip: Path) -> None:
    path = write_config(tmp_path, mosquitto, coco_model, clip)
    doc = yaml.safe_load(path.read_text())
    doc["model"]["classes"] = ["person", "trukc"]
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.run([sys.executable, "-m", "edge_agent", "run", "-c", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "model.classes[1]: 'trukc' is not a class of the model; known classes: person, bicycle" in proc.stderr
