"""The controller against a real mosquitto: ingest, shared subscription, decisions on their topics, the API,
the dashboard in a real headless Chromium, and the agent on real video feeding the controller."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from conftest import IN_CI, Broker, free_port
from edge_agent.controller.app import Controller
from edge_agent.messages import load_schema
from test_controller_support import T0, config, stats_bytes

PLAN, LIGHT, RECS = "city/signals/main-x/plan", "city/lighting/main-street/set", "city/services/centre/recommendations"


class Client:
    """A real paho client: publishes, and records everything under ``topic`` (retained included)."""

    def __init__(self, broker: Broker, topic: str = "city/#"):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{time.monotonic_ns()}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self.cond.notify_all()

    def wait_for(self, topics: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not topics <= {t for t, _, _ in self.messages}:
                if not self.cond.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() > deadline:
                    return False
        return True

    def last(self, topic: str) -> dict[str, Any]:
        return json.loads([p for t, p, _ in self.messages if t == topic][-1])

    def publish_all(self, items: list[tuple[str, bytes]], retain: bool = False) -> None:
        infos = [self.client.publish(t, p, qos=1, retain=retain) for t, p in items]
        for i in infos:
            i.wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def traffic(intervals: int, cams: tuple[str, ...] = ("cam-n", "cam-s", "cam-e")) -> list[tuple[str, bytes]]:
    out = []
    for k in range(intervals):
        for c, n in zip(cams, (5, 4, 3, 2)):
            out.append(stats_bytes(c, T0 + timedelta(minutes=k), {"stop": (n, 1)}))
    return out


def mqtt_cfg(broker: Broker, client_id: str = "ctrl-a") -> dict[str, Any]:
    return {"host": broker.host, "port": broker.port, "topic_prefix": "city", "client_id": client_id}


@pytest.fixture()
def controller(tmp_path: Path, mosquitto: Broker) -> Iterator[Controller]:
    c = Controller(config(tmp_path, mqtt=mqtt_cfg(mosquitto)))
    c.start()
    assert c.mqtt is not None and c.mqtt.subscribed.wait(10)
    yield c
    c.close()


def test_stats_over_mqtt_become_plan_lighting_and_recommendations(controller: Controller, mosquitto: Broker
                                                                   ) -> None:
    sub = Client(mosquitto)
    try:
        sub.publish_all([("city/cam-n/status", b"online"), ("city/cam-s/status", b"offline")], retain=True)
        sub.publish_all(traffic(3) + [("city/cam-n/stats", b"garbage")])
        assert sub.wait_for({PLAN, LIGHT, RECS}, 15), sorted({t for t, _, _ in sub.messages})
        plan = sub.last(PLAN)
        jsonschema.validate(plan, load_schema("controller-signal-plan.v1"))
        assert plan["flows_used"]["veh_h"] == {"north": 300.0, "south": 240.0, "east": 180.0}
        jsonschema.validate(sub.last(LIGHT), load_schema("controller-lighting-set.v1"))
        jsonschema.validate(sub.last(RECS), load_schema("controller-service-recommendations.v1"))
        assert all(r for t, _, r in sub.messages if t in (PLAN, LIGHT, RECS)) is False  # live copies not retained
        late = Client(mosquitto)  # ... but a newcomer gets the retained decisions at once
        assert late.wait_for({PLAN, LIGHT, RECS, "city/controller/ctrl-a/status"}, 5)
        # the first copy of each is the retained one (a fresh decision may follow it, live)
        for topic in (PLAN, LIGHT, RECS):
            assert next(r for t, _, r in late.messages if t == topic), topic
        late.close()
        counters = controller.ingestor.snapshot()
        assert counters["stored"] == 9 and counters["invalid.json"] == 1
        port = controller.api.port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/nodes", timeout=5) as r:
            nodes = {n["camera_id"]: n for n in json.loads(r.read())}
        assert nodes["cam-s"]["status"] == "offline" and nodes["cam-s"]["silent"] == "status offline"
        assert nodes["cam-n"]["status"] == "online" and nodes["cam-n"]["messages"] == 3
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/plans", timeout=5) as r:
            assert json.loads(r.read())["main-x"]["flows_used"]["veh_h"]["north"] == 300.0
    finally:
        sub.close()


def test_two_replicas_on_a_shared_subscription_store_every_message_once(tmp_path: Path, mosquitto: Broker) -> None:
    replicas = []
    for name, decide in (("ctrl-a", True), ("ctrl-b", False)):
        cfg = config(tmp_path, mqtt=mqtt_cfg(mosquitto, name), control={"decide": decide},
                     http={"enabled": False})
        c = Controller(cfg)
        c.start()
        assert c.mqtt is not None and c.mqtt.subscribed.wait(10)
        replicas.append(c)
    pub = Client(mosquitto, "nothing/here")
    try:
        msgs = traffic(100, ("cam-1", "cam-2", "cam-3", "cam-4"))
        pub.publish_all(msgs)
        pub.publish_all(msgs[:50])  # a node that resends after a restart
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(c.ingestor.snapshot().get("stored", 0) for c in replicas) < 400:
            time.sleep(0.1)
        for c in replicas:
            c.ingestor.flush()
        stored = [c.ingestor.snapshot().get("stored", 0) for c in replicas]
        assert sum(stored) == 400 and min(stored) > 0, stored  # split between the two, none twice
        assert replicas[0].store.count("stats") == 400
        dups = sum(c.ingestor.snapshot().get("duplicate", 0) for c in replicas)
        assert dups == 50
    finally:
        pub.close()
        for c in replicas:
            c.close()


# ------------------------------------------------------------------ dashboard in a real browser


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if IN_CI:
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium chromium-driver)")
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver)")
    return exe


def read_png(path: Path) -> np.ndarray:
    """(h, w, 3) uint8 pixels of an 8-bit RGB/RGBA PNG (what Chromium writes), decoded with zlib only."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w, h, ch = 8, b"", 0, 0, 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            assert body[8] == 8 and body[9] in (2, 6) and body[12] == 0, "expected 8-bit RGB(A), not interlaced"
            ch = 3 if body[9] == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * ch
    prev = [0] * stride
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = list(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for x in range(ch, stride):
                line[x] = (line[x] + line[x - ch]) & 255
        elif f == 2:
            line = [(a + b) & 255 for a, b in zip(line, prev)]
        elif f == 3:
            for x in range(stride):
                line[x] = (line[x] + ((line[x - ch] if x >= ch else 0) + prev[x]) // 2) & 255
        elif f == 4:
            for x in range(stride):
                a = line[x - ch] if x >= ch else 0
                b, c = prev[x], (prev[x - ch] if x >= ch else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else (b if pb <= pc else c))) & 255
        rows.append(line)
        prev = line
    return np.array(rows, np.uint8).reshape(h, w, ch)[:, :, :3]


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--window-size=1280,900", "--virtual-time-budget=8000"]


def test_dashboard_renders_charts_and_decisions_in_headless_chromium(controller: Controller, mosquitto: Broker,
                                                                     tmp_path: Path) -> None:
    exe = chromium()
    pub = Client(mosquitto)
    try:
        pub.publish_all(traffic(6))
        assert pub.wait_for({PLAN, LIGHT, RECS}, 15)
    finally:
        pub.close()
    url = f"http://127.0.0.1:{controller.api.port}/"
    profile = tmp_path / "chrome-profile"
    env = {**os.environ, "HOME": str(tmp_path)}
    dom = subprocess.run([exe, *CHROME_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout.split("<script>")[0]  # what the page's script rendered, not the script itself
    assert 'data-loaded="yes"' in html, dom.stdout[-3000:]
    for cam in ("cam-n", "cam-s", "cam-e"):
        assert f'data-camera="{cam}"' in html
    assert html.count('class="series"') == 6  # in and out of each camera's line
    assert "main-x</b>: cycle" in html and "Central garage" in html and "main-street" in html
    shot = tmp_path / "dashboard.png"
    run = subprocess.run([exe, *CHROME_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", url],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    img = read_png(shot)
    assert img.shape[:2] == (900, 1280)

    def share(rgb: tuple[int, int, int]) -> float:
        return float(np.mean(np.all(np.abs(img.astype(int) - rgb) <= 12, axis=2)))

    assert share((29, 53, 87)) > 0.01    # the header bar
    assert share((230, 57, 70)) > 0.0005  # the first series' line and dots (#e63946)
    assert share((69, 123, 157)) > 0.0005  # the second series (#457b9d)
    assert share((255, 255, 255)) > 0.2   # panels


# ------------------------------------------------------------------ the agent on real video -> controller


def test_agent_on_vtest_feeds_the_controller_command(tmp_path: Path, mosquitto: Broker, coco_model: Path,
                                                     vtest_video: Path) -> None:
    from test_end_to_end import agent, write_config
    import cv2

    clip = tmp_path / "vtest_20s.avi"  # 20 s of vtest.avi: two 10-s intervals
    cap = cv2.VideoCapture(str(vtest_video))
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
    for _ in range(200):
        ok, img = cap.read()
        assert ok
        writer.write(img)
    writer.release()
    agent_cfg = write_config(tmp_path, mosquitto, coco_model, clip)
    doc = yaml.safe_load(agent_cfg.read_text())
    if "spool" in __import__("edge_agent.config", fromlist=["AgentConfig"]).AgentConfig.model_fields:
        doc["spool"] = {"dir": str(tmp_path / "spool")}
    agent_cfg.write_text(yaml.safe_dump(doc))

    root = Path(__file__).resolve().parents[1]
    ctrl_doc = yaml.safe_load((root / "configs/controller.yaml").read_text())
    ctrl_doc["mqtt"].update({"host": mosquitto.host, "port": mosquitto.port, "topic_prefix": "itest"})
    ctrl_doc["store"] = {"sqlite": str(tmp_path / "ctrl.db")}
    ctrl_doc["control"]["period_s"] = 1
    ctrl_doc["http"]["port"] = free_port()
    ctrl_path = tmp_path / "controller.yaml"
    ctrl_path.write_text(yaml.safe_dump(ctrl_doc))
    ctrl = subprocess.Popen([sys.executable, "-m", "edge_agent.controller", "-c", str(ctrl_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=root)
    sub = Client(mosquitto, "itest/#")
    try:
        assert sub.wait_for({"itest/controller/controller-1/status"}, 20)
        proc = agent(agent_cfg)
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, log[-3000:]
        want = {"itest/signals/campus-junction/plan", "itest/lighting/campus-road/set",
                "itest/services/campus/recommendations"}
        assert sub.wait_for(want | {"itest/campus/stats"}, 20), sorted({t for t, _, _ in sub.messages})
        stats = [json.loads(p) for t, p, _ in sub.messages if t == "itest/campus/stats"]
        deadline = time.monotonic() + 10
        base = f"http://127.0.0.1:{ctrl_doc['http']['port']}"
        while True:  # the plan that counts is the one computed after every interval arrived
            with urllib.request.urlopen(base + "/api/nodes", timeout=5) as r:
                nodes = json.loads(r.read())
            if nodes and nodes[0]["messages"] == len(stats) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert nodes[0]["camera_id"] == "campus" and nodes[0]["messages"] == len(stats) and nodes[0]["status"] \
            == "offline"
        time.sleep(1.5)  # one more decision round
        with urllib.request.urlopen(base + "/api/plans", timeout=5) as r:
            plan = json.loads(r.read())["campus-junction"]
        # the flows the plan used are the agent's counts: eastbound = west line "in" over the last 3 intervals
        west_in = sum(line["in"]["vehicles"] for d in stats for line in d["lines"] if line["line_id"] == "west")
        observed = sum(d["interval"]["observed_s"] for d in stats)
        assert plan["flows_used"]["veh_h"]["eastbound"] == pytest.approx(west_in * 3600 / observed, abs=0.1)
        with urllib.request.urlopen(base + "/api/lighting", timeout=5) as r:
            assert json.loads(r.read())["campus-road"]["segment"] == "campus-road"
        with urllib.request.urlopen(base + "/api/recommendations", timeout=5) as r:
            assert [o["rank"] for o in json.loads(r.read())["campus"]["options"]] == [1, 2]
    finally:
        sub.close()
        ctrl.terminate()
        out, _ = ctrl.communicate(timeout=30)
    assert ctrl.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
