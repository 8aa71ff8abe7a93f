"""Helpers for tests that run the agent against a real broker."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import Broker

PREFIX = "itest"
CAMERA = "campus"


class Subscriber:
    """Collects every message under ``PREFIX/#`` (retained ones included), reconnecting by itself.

    Args:
        broker: where to connect.
        persistent: an MQTT 5 session that outlives disconnects (QoS 1 messages queue for it).
        client_id: fixed id (needed for a persistent session).
        username, password, ca: credentials and TLS CA for a secured broker.
    """

    def __init__(self, broker: Broker, persistent: bool = False, client_id: str | None = None,
                 username: str | None = None, password: str | None = None, ca: Path | None = None):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connects = 0
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"sub-{time.monotonic_ns()}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        if ca:
            self.client.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 2)
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        self.client.connect(broker.host, broker.port, clean_start=not persistent, properties=props)
        self.client.loop_start()
        assert self.wait_for(lambda m: self.connects > 0, 10), "subscriber could not connect"
        time.sleep(0.2)  # let the subscription settle

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(f"{PREFIX}/#", qos=1)
        with self.cond:
            self.connects += 1
            self.cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self.cond.notify_all()

    def wait_for(self, pred: Callable[[list[tuple[str, bytes, bool]]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def stats(self, camera: str = CAMERA) -> list[dict[str, Any]]:
        with self.cond:
            return [json.loads(p) for t, p, _ in self.messages if t == f"{PREFIX}/{camera}/stats"]

    def unique_stats(self, camera: str = CAMERA) -> list[dict[str, Any]]:
        """Statistics with repeats (same message_id, at-least-once delivery) removed, in arrival order."""
        seen: set[str] = set()
        out = []
        for doc in self.stats(camera):
            if doc["message_id"] not in seen:
                seen.add(doc["message_id"])
                out.append(doc)
        return out

    def statuses(self, camera: str = CAMERA) -> list[bytes]:
        with self.cond:
            return [p for t, p, _ in self.messages if t == f"{PREFIX}/{camera}/status"]

    def health(self, camera: str = CAMERA) -> list[dict[str, Any]]:
        with self.cond:
            return [json.loads(p) for t, p, _ in self.messages if t == f"{PREFIX}/{camera}/health"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained_status(broker: Broker) -> bytes | None:
    """What a newly connecting client gets as the retained status."""
    sub = Subscriber(broker)
    sub.wait_for(lambda m: any(t.endswith("/status") for t, _, _ in m), 3)
    sub.close()
    found = sub.statuses()
    return found[-1] if found else None


def make_clip(video: Path, out: Path, frames: int) -> Path:
    """The first ``frames`` frames of a real video, re-encoded as MJPG (a short real clip)."""
    cap = cv2.VideoCapture(str(video))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
    for _ in range(frames):
        ok, img = cap.read()
        assert ok
        writer.write(img)
    writer.release()
    return out


def write_config(tmp_path: Path, broker: Broker, model: Path, video: Path | str, realtime: bool = False,
                 **overrides: Any) -> Path:
    """An agent configuration for one camera on vtest.avi-like video, with two lines across the road.

    ``overrides`` replace top-level sections (``mqtt`` entries are merged) or, with a ``camera_``
    prefix, keys of the camera.
    """
    cam: dict[str, Any] = {
        "id": CAMERA, "source": str(video), "lines": [
            {"id": "west", "p1": [250, 170], "p2": [250, 330], "in_side": "left"},
            {"id": "east", "p1": [560, 200], "p2": [560, 420], "in_side": "left"}]}
    if "://" not in str(video):
        cam.update({"start_time": "2024-05-06T08:00:00Z", "realtime": realtime})
    cfg: dict[str, Any] = {
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "itest-node", "topic_prefix": PREFIX},
        "model": {"path": str(model), "classes": ["person", "car"]},
        "statistics": {"interval_s": 10},
        "spool": {"dir": str(tmp_path / "spool")},
        "cameras": [cam],
    }
    for key, value in overrides.items():
        if key.startswith("camera_"):
            cam[key.removeprefix("camera_")] = value
        elif key == "mqtt":
            cfg["mqtt"].update(value)
        else:
            cfg[key] = value
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def agent(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``edge-agent run -c config`` in a subprocess, stdout and stderr merged."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=full_env)


class LogReader:
    """Reads a running agent's output in a thread, so a test can wait for lines."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, pred: Callable[[str], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.text()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
        return True

    def text(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float = 30) -> str:
        self.thread.join(timeout)
        return self.text()


def logged_records(log: str) -> list[dict[str, Any]]:
    marker = "interval record "
    return [json.loads(line.split(marker, 1)[1]) for line in log.splitlines() if marker in line]
