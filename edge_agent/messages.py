"""IntervalRecord -> Message: JSON payloads and MQTT topics.

Shared by the camera node and the controller; imports neither OpenCV nor
ONNX Runtime. Payload layouts are pinned by JSON Schema files in
``edge_agent/schemas/``; tests validate real messages against them.

Topics (``prefix`` is ``mqtt.topic_prefix``)::

    {prefix}/{camera}/stats    interval statistics, QoS 1, not retained
    {prefix}/{camera}/status   "online" / "offline", QoS 1, retained;
                               "offline" is also the Last Will
    {prefix}/{camera}/health   JSON health record, QoS 0, retained, periodic
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

from edge_agent import __version__
from edge_agent.types import Direction, IntervalRecord, Message

STATS_SCHEMA = "edge-agent/interval-stats"
STATS_SCHEMA_VERSION = 1
ONLINE, OFFLINE = b"online", b"offline"


def stats_topic(prefix: str, camera_id: str) -> str:
    return f"{prefix}/{camera_id}/stats"


def status_topic(prefix: str, camera_id: str) -> str:
    return f"{prefix}/{camera_id}/status"


def health_topic(prefix: str, camera_id: str) -> str:
    return f"{prefix}/{camera_id}/health"


def _iso(dt: Any) -> str:
    return str(dt.isoformat().replace("+00:00", "Z"))


def stats_payload(record: IntervalRecord, node_id: str, vehicle_classes: Collection[str]) -> dict[str, Any]:
    """The JSON document of one interval record (see ``schemas/interval-stats.v1.json``)."""
    lines = []
    for lc in record.lines:
        entry: dict[str, Any] = {"line_id": lc.line_id}
        for d in (Direction.IN, Direction.OUT):
            by_class: Mapping[str, int] = lc.counts.get(d, {})
            vehicles = sum(n for cls, n in by_class.items() if cls in vehicle_classes)
            flow = round(vehicles * 3600.0 / record.observed_s, 1) if record.observed_s > 0 else None
            entry[d.value] = {"total": sum(by_class.values()), "by_class": dict(by_class),
                              "vehicles": vehicles, "flow_veh_h": flow}
        lines.append(entry)
    return {
        "schema": STATS_SCHEMA,
        "schema_version": STATS_SCHEMA_VERSION,
        "agent_version": __version__,
        "node_id": node_id,
        "camera_id": record.camera_id,
        "interval": {
            "start": _iso(record.start),
            "end": _iso(record.end),
            "length_s": record.seconds,
            "observed_s": record.observed_s,
            "partial": record.partial,
        },
        "lines": lines,
        "frames": {"processed": record.frames_processed, "dropped": record.frames_dropped},
        "inference_ms_mean": record.inference_ms_mean,
    }


def stats_message(record: IntervalRecord, prefix: str, node_id: str,
                  vehicle_classes: Collection[str]) -> Message:
    return Message(stats_topic(prefix, record.camera_id), stats_payload(record, node_id, vehicle_classes), qos=1)


@lru_cache(maxsize=None)
def load_schema(name: str = "interval-stats.v1") -> dict[str, Any]:
    """A JSON Schema shipped in ``edge_agent/schemas`` (e.g. ``interval-stats.v1``)."""
    text = resources.files("edge_agent.schemas").joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def validate(doc: Mapping[str, Any], schema: str) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` does not follow ``schemas/<schema>.json``."""
    import jsonschema  # local: only the controller and tests validate

    jsonschema.validate(doc, load_schema(schema))


def validate_stats(doc: Mapping[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` is not a valid statistics message."""
    validate(doc, "interval-stats.v1")
