"""Nothing is lost: broker outages, a crash during an outage, camera outages, TLS, secrets.

Every test runs the installed agent with the real model against a real
mosquitto (and, for the camera outage, a real HTTP MJPEG server) that the test
stops and starts.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from agent_support import CAMERA, LogReader, Subscriber, agent, logged_records, make_clip, write_config
from conftest import Broker, free_port

MJPEG_SERVER = Path(__file__).with_name("mjpeg_server.py")


def assert_complete(sub: Subscriber, logged: list[dict[str, object]]) -> None:
    """After dropping repeats, the subscriber holds every logged record once, in order, seq without gaps."""
    got = sub.unique_stats()
    assert [d["seq"] for d in got] == list(range(1, len(got) + 1)), [d["seq"] for d in got]
    ids = [d["message_id"] for d in got]
    assert all(d["message_id"] in ids for d in logged)
    by_id = {d["message_id"]: d for d in got}
    assert [by_id[d["message_id"]] for d in logged] == logged  # same content


def test_broker_outage_of_30s_loses_nothing(tmp_path: Path, coco_model: Path, vtest_video: Path) -> None:
    # (a) and (c): the broker keeps a persistent session for the subscriber across its restart
    (tmp_path / "b").mkdir()
    broker = Broker(tmp_path / "b", persistence=True)
    sub = Subscriber(broker, persistent=True, client_id="city-dashboard")
    cfg = write_config(tmp_path, broker, coco_model, vtest_video, camera_fps_cap=5,
                       spool={"dir": str(tmp_path / "spool"), "drain_s": 120})
    proc = agent(cfg)
    log = LogReader(proc)
    try:
        assert sub.wait_for(lambda m: len(sub.stats()) >= 1, 180), log.text()
        broker.stop()
        down = time.monotonic()
        assert log.wait_for(lambda t: t.count("interval record") >= 3, 120), log.text()
        time.sleep(max(0.0, 30 - (time.monotonic() - down)))
        broker.start()
        assert proc.wait(timeout=600) == 0, log.text()
        logged = logged_records(log.finish())
        assert len(logged) == 8  # 80 s of video in 10 s intervals
        assert sub.wait_for(lambda m: len(sub.unique_stats()) >= len(logged), 60), (
            [d["seq"] for d in sub.stats()], sub.connects, log.text()[-3000:], broker.log.read_text()[-3000:])
        assert_complete(sub, logged)
        assert "lost broker" in log.text()
    finally:
        proc.kill()
        sub.close()
        broker.stop()


def test_crash_during_an_outage_then_restart_loses_nothing(tmp_path: Path, coco_model: Path,
                                                           vtest_video: Path) -> None:
    # (b): broker down, agent killed with SIGKILL, agent restarted, broker back
    (tmp_path / "b").mkdir()
    broker = Broker(tmp_path / "b", persistence=True)
    sub = Subscriber(broker, persistent=True, client_id="city-dashboard")
    cfg = write_config(tmp_path, broker, coco_model, vtest_video, camera_fps_cap=5)
    first = agent(cfg)
    log1 = LogReader(first)
    try:
        assert sub.wait_for(lambda m: len(sub.stats()) >= 1, 180), log1.text()
        broker.stop()
        assert log1.wait_for(lambda t: t.count("interval record") >= 3, 180), log1.text()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        spooled = logged_records(log1.finish())
        # restart on a short clip: what the first run spooled must go out first
        clip = make_clip(vtest_video, tmp_path / "short.avi", 50)
        second = agent(write_config(tmp_path, broker, coco_model, clip,
                                    spool={"dir": str(tmp_path / "spool"), "drain_s": 120}))
        log2 = LogReader(second)
        time.sleep(3)
        broker.start()
        assert second.wait(timeout=300) == 0, log2.text()
        text2 = log2.finish()
        assert "from an earlier run wait in the spool" in text2
        logged = spooled + logged_records(text2)
        assert sub.wait_for(lambda m: len(sub.unique_stats()) >= len(logged), 60)
        assert_complete(sub, logged)
    finally:
        first.kill()
        sub.close()
        broker.stop()


def test_camera_outage_is_retried_reported_and_resumed(tmp_path: Path, mosquitto: Broker, coco_model: Path,
                                                       vtest_video: Path) -> None:
    port = free_port()
    server_cmd = [sys.executable, str(MJPEG_SERVER), str(vtest_video), str(port)]
    server = subprocess.Popen(server_cmd)
    sub = Subscriber(mosquitto)
    cfg = write_config(tmp_path, mosquitto, coco_model, f"http://127.0.0.1:{port}/video.mjpg",
                       statistics={"interval_s": 2}, health={"interval_s": 1},
                       camera_reconnect_min_s=0.5, camera_reconnect_max_s=2, camera_stall_s=2)
    proc = agent(cfg)
    log = LogReader(proc)
    try:
        assert sub.wait_for(lambda m: any(d["frames"]["processed"] > 0 for d in sub.stats()), 120), log.text()
        server.kill()
        server.wait()
        assert sub.wait_for(lambda m: any(h["state"] == "reconnecting" for h in sub.health()), 60), log.text()
        n_outage = len(sub.stats())
        assert sub.wait_for(lambda m: len(sub.stats()) >= n_outage + 2, 30)  # intervals go on during the outage
        server = subprocess.Popen(server_cmd)
        assert sub.wait_for(lambda m: any(h["state"] == "streaming" and h["reconnects"] >= 1
                                          for h in sub.health()), 60), log.text()
        assert sub.wait_for(lambda m: sub.stats()[-1]["frames"]["processed"] > 0, 30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        server.kill()
        sub.close()
    stats = sub.stats()
    assert any(d["frames"]["processed"] == 0 for d in stats[n_outage - 1:]), "an interval without frames shows the outage"
    assert "cannot open" in log.finish() or "stopped delivering frames" in log.text()


def _make_tls(tmp: Path) -> dict[str, Path]:
    """A test CA and a broker certificate for 127.0.0.1 (openssl)."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=edge-agent test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
        "-subj", "/CN=127.0.0.1")
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "broker.pem", "-days", "2", "-extfile", "san.ext")
    return {"ca": tmp / "ca.pem", "cert": tmp / "broker.pem", "key": tmp / "broker.key"}


def test_tls_password_health_endpoint_and_no_secret_in_logs(tmp_path: Path, coco_model: Path,
                                                            vtest_video: Path) -> None:
    for tool in ("openssl", "mosquitto_passwd"):
        if subprocess.run(["which", tool], capture_output=True).returncode:
            pytest.fail(f"{tool} is missing (Debian packages openssl, mosquitto)")
    certs = tmp_path / "certs"
    certs.mkdir()
    tls = _make_tls(certs)
    password, cam_secret = "s3cret-broker-pw-8271", "cam-pass-5519"
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "node7", password], check=True)
    port = free_port()
    (tmp_path / "b").mkdir()
    broker = Broker(tmp_path / "b", port=port, extra=(
        f"listener {port} 127.0.0.1\ncafile {tls['ca']}\ncertfile {tls['cert']}\nkeyfile {tls['key']}\n"
        f"allow_anonymous false\npassword_file {pwfile}\n"))
    sub = Subscriber(broker, username="node7", password=password, ca=tls["ca"])
    clip = make_clip(vtest_video, tmp_path / "clip.avi", 120)
    dead = free_port()
    http_port = free_port()
    cfg = write_config(
        tmp_path, broker, coco_model, clip,
        mqtt={"username": "node7", "password_env": "EDGE_TEST_MQTT_PW", "tls": {"ca": str(tls["ca"])}},
        health={"interval_s": 1, "http_port": http_port})
    doc = yaml.safe_load(cfg.read_text())
    doc["cameras"].append({"id": "gate", "source": f"rtsp://admin:{cam_secret}@127.0.0.1:{dead}/stream1",
                           "reconnect_min_s": 0.5, "reconnect_max_s": 1, "lines": []})
    cfg.write_text(yaml.safe_dump(doc))
    proc = agent(cfg, env={"EDGE_TEST_MQTT_PW": password})
    log = LogReader(proc)
    try:
        assert sub.wait_for(lambda m: sub.stats() and sub.stats()[-1]["interval"]["partial"], 240), log.text()
        assert sub.wait_for(lambda m: any(h["state"] == "reconnecting" for h in sub.health("gate")), 30)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
        assert f'edge_agent_frames_processed_total{{camera="{CAMERA}"}} 120.0' in metrics
        assert 'edge_agent_mqtt_connected{camera="gate"} 1.0' in metrics
        with pytest.raises(urllib.error.HTTPError) as err:  # the RTSP camera is down: not healthy
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5)
        assert err.value.code == 503
        health = json.loads(err.value.read())
        assert health["cameras"]["gate"]["state"] == "reconnecting"
        assert health["cameras"][CAMERA]["state"] in ("ended", "stopped")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.text()
    finally:
        proc.kill()
        sub.close()
        broker.stop()
    text = log.finish()
    assert [d for d in logged_records(text) if d["camera_id"] == CAMERA] == sub.stats()
    assert len(sub.stats()) >= 2
    everything = text + "".join(p.decode(errors="replace") for _, p, _ in sub.messages)
    assert password not in everything and cam_secret not in everything
    assert "rtsp://***@127.0.0.1" in text  # the source is still named, without credentials
