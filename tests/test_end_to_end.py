"""End to end: the real model on real video, a real mosquitto, the installed command.

``edge-agent run`` counts people crossing a line across the road in
vtest.avi and publishes interval statistics; a subscriber checks them against
the JSON Schema and against what the agent logged, and that the retained
status turns ``offline`` on a clean stop, on SIGTERM and on SIGKILL.
"""

from __future__ import annotations

import json

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent_support import Subscriber, agent, logged_records, make_clip, retained_status, write_config
from conftest import Broker
from edge_agent.messages import validate, validate_stats

@pytest.fixture()
def subscriber(mosquitto: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(mosquitto)
    yield sub
    sub.close()


@pytest.fixture(scope="module")
def clip(vtest_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 30 s (300 frames) of vtest.avi."""
    return make_clip(vtest_video, tmp_path_factory.mktemp("clip") / "vtest_30s.avi", 300)


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
    assert [d["seq"] for d in received] == list(range(1, len(received) + 1))
    assert len({d["message_id"] for d in received}) == len(received)
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
    # the same spool: numbering goes on where the first run stopped
    assert [d["seq"] for d in logged_records(log2)] == list(range(len(logged) + 1, 2 * len(logged) + 1))


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


def test_zones_publish_events_and_presence(
        tmp_path: Path, mosquitto: Broker, subscriber: Subscriber, coco_model: Path, clip: Path) -> None:
    """A zone over the footway between the lines, with every crossing also published as an event."""
    zone = {"id": "middle", "polygon": [[260, 170], [550, 190], [550, 430], [260, 340]], "lane": "footway",
            "stop_line": "east"}
    cfg = write_config(tmp_path, mosquitto, coco_model, clip, camera_zones=[zone], events={"crossings": True},
                       statistics={"interval_s": [10, 30], "vehicle_classes": ["person", "car"]})
    proc = agent(cfg)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    assert subscriber.wait_for(lambda m: subscriber.statuses()[-1:] == [b"offline"], 10), log
    stats = subscriber.stats()
    assert sorted(d["interval"]["length_s"] for d in stats) == [10.0, 10.0, 10.0, 30.0]
    for doc in stats:
        validate_stats(doc)
        (z,) = doc["zones"]
        assert z["zone_id"] == "middle" and z["occupancy"]["person"]["max"] >= 1
        assert doc["lanes"][0]["lane_id"] == "footway" and doc["quality"]["frames_expected"] == (
            doc["frames"]["processed"])
    crossings = sum(line[d]["total"] for doc in stats if doc["interval"]["length_s"] == 30.0
                    for line in doc["lines"] for d in ("in", "out"))
    events = [json.loads(p) for t, p, _ in subscriber.messages if t.endswith("/events")]
    assert len(events) == crossings > 0
    for doc in events:
        validate(doc, "events.v1")
        assert doc["kind"] == "crossing" and doc["start"] == doc["end"]
    presence = [json.loads(p) for t, p, _ in subscriber.messages if t.endswith("/presence")]
    assert len(presence) >= 25  # one per second of video (retained: the subscriber may see the last twice)
    for doc in presence:
        validate(doc, "presence.v1")
    assert max(doc["lanes"][0]["vehicles"] for doc in presence) >= 1
