"""IntervalRecord -> Message: JSON payloads and MQTT topics.

Shared by the camera node and the controller; imports neither OpenCV nor
ONNX Runtime. Payload layouts are pinned by JSON Schema files in
``edge_agent/schemas/``; tests validate real messages against them.

Topics (``prefix`` is ``mqtt.topic_prefix``)::

    {prefix}/{camera}/stats    interval statistics, QoS 1, not retained
    {prefix}/{camera}/status   "online" / "offline", QoS 1, retained;
                               "offline" is also the Last Will
    {prefix}/{camera}/health   JSON health record, QoS 0, retained, periodic
    {prefix}/{camera}/events   incidents (wrong way, stopped vehicle, spill-back)
                               and, optionally, line crossings; QoS 1
    {prefix}/{camera}/presence per-lane vehicles / queue / near the stop line,
                               every 1-2 s, QoS 0, retained (latest value)
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

from edge_agent import __version__
from edge_agent.types import DEFAULT_SPEED_BINS_KMH as DEFAULT_BINS
from edge_agent.types import Direction, Incident, IntervalRecord, LaneStats, Message, SpeedStats, ZoneStats

STATS_SCHEMA = "edge-agent/interval-stats"
STATS_SCHEMA_VERSION = 1
EVENT_SCHEMA = "edge-agent/event"
ONLINE, OFFLINE = b"online", b"offline"


def stats_topic(prefix: str, camera_id: str) -> str:
    return f"{prefix}/{camera_id}/stats"


def status_topic(prefix: str, camera_id: str) -> str:
    return f"{prefix}/{camera_id}/status"


def health_topic(prefix: str, camera_id: str) -> str:
    return f"{prefix}/{camera_id}/health"


def events_topic(prefix: str, camera_id: str) -> str:
    return f"{prefix}/{camera_id}/events"


def presence_topic(prefix: str, camera_id: str) -> str:
    return f"{prefix}/{camera_id}/presence"


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _iso_ms(ts: float) -> str:
    return utc(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(dt: Any) -> str:
    return str(dt.isoformat().replace("+00:00", "Z"))


def _speeds(s: SpeedStats | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"n": s.n, "space_mean": s.space_mean, "time_mean": s.time_mean, "p85": s.p85, "min": s.min,
            "max": s.max, "histogram": list(s.histogram), "over_limit": s.over_limit}


def _mean_max(v: tuple[float, float] | tuple[float, int] | None) -> dict[str, float] | None:
    return None if v is None else {"mean": v[0], "max": v[1]}


def _zone(z: ZoneStats) -> dict[str, Any]:
    return {
        "zone_id": z.zone_id, "lane": z.lane, "approach": z.approach,
        "occupancy": {c: {"current": cur, "mean": mean, "max": mx} for c, (cur, mean, mx) in z.occupancy.items()},
        "occupancy_pct": z.occupancy_pct, "density_veh_km": z.density_veh_km,
        "queue_veh": _mean_max(z.queue_veh), "queue_m": _mean_max(z.queue_m),
        "dwell_s": {"n": z.dwell_s[0], "mean": z.dwell_s[1], "max": z.dwell_s[2]},
        "speed_kmh": z.speed_kmh,
    }


def _lane(ln: LaneStats) -> dict[str, Any]:
    return {
        "lane_id": ln.lane_id, "approach": ln.approach, "volume": ln.volume, "flow_veh_h": ln.flow_veh_h,
        "headway_s": {"n": ln.headway_s[0], "mean": ln.headway_s[1], "min": ln.headway_s[2]},
        "occupancy_pct": ln.occupancy_pct, "density_veh_km": ln.density_veh_km,
        "queue_veh": _mean_max(ln.queue_veh), "speed_kmh": _speeds(ln.speeds),
    }


def stats_payload(record: IntervalRecord, node_id: str, vehicle_classes: Collection[str],
                  speed_bins_kmh: Sequence[float] = DEFAULT_BINS) -> dict[str, Any]:
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
        entry.update(lane=lc.lane, approach=lc.approach, speed_kmh=_speeds(lc.speeds))
        lines.append(entry)
    q = record.quality
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
        "revision": record.revision,
        "zones": [_zone(z) for z in record.zones],
        "lanes": [_lane(ln) for ln in record.lanes],
        "movements": {m: dict(c) for m, c in record.movements.items()},
        "speed_bins_kmh": list(speed_bins_kmh),
        "frames": {"processed": record.frames_processed, "dropped": record.frames_dropped},
        "quality": {"observed_s": q.observed_s if q else record.observed_s,
                    "frames_expected": q.frames_expected if q else None,
                    "online_s": q.online_s if q else record.observed_s},
        "inference_ms_mean": record.inference_ms_mean,
    }


def stats_message(record: IntervalRecord, prefix: str, node_id: str,
                  vehicle_classes: Collection[str], speed_bins_kmh: Sequence[float] = DEFAULT_BINS) -> Message:
    return Message(stats_topic(prefix, record.camera_id),
                   stats_payload(record, node_id, vehicle_classes, speed_bins_kmh), qos=1)


def event_payload(inc: Incident, node_id: str) -> dict[str, Any]:
    """The JSON document of one incident (see ``schemas/events.v1.json``)."""
    return {
        "schema": EVENT_SCHEMA, "schema_version": 1, "agent_version": __version__, "node_id": node_id,
        "camera_id": inc.camera_id, "incident_id": inc.incident_id, "kind": inc.kind, "where": inc.where,
        "start": _iso_ms(inc.start), "end": None if inc.end is None else _iso_ms(inc.end),
        "lane": inc.lane, "approach": inc.approach, "class": inc.class_name, "track_id": inc.track_id,
        "confidence": inc.confidence, "detail": dict(inc.detail),
    }


def event_message(inc: Incident, prefix: str, node_id: str) -> Message:
    return Message(events_topic(prefix, inc.camera_id), event_payload(inc, node_id), qos=1)


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
