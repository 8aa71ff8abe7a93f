"""The central controller: ingests every camera node's messages, stores them, decides and publishes.

Run it as ``edge-agent controller -c controller.yaml`` (or ``python -m
edge_agent.controller -c controller.yaml``). It imports neither OpenCV nor
ONNX Runtime nor the agent's vision stages, so it installs without them.

Modules, in the order data flows::

    config     YAML -> ControllerConfig
    mqtt_io    broker -> (topic, payload)          shared subscription, MQTT 5
    ingest     (topic, payload) -> validated rows  one handler per message kind, dedupe, batched writer
    store      rows -> SQLite (WAL) / PostgreSQL    schema migrations
    decide     store -> decisions every period     signals, lighting, services, anomalies, node health
    api        decisions + store -> HTTP/JSON and the dashboard
"""
