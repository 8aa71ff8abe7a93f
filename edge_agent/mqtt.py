"""Message -> MQTT broker, with paho-mqtt 2.x (VERSION2 callbacks).

The only module that imports paho. One client per camera, so that each
camera's retained ``status`` topic has its own Last Will: if the process dies,
the broker publishes ``offline`` for every camera it ran.

Delivery: statistics go out at QoS 1. While the broker is unreachable, paho
keeps QoS 1 messages in its in-memory queue (unbounded here) and sends them
after it reconnects; :meth:`MqttPublisher.close` waits for their PUBACKs
before disconnecting. (A disk spool that survives a restart is separate
work.)
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from edge_agent.config import MQTTConfig
from edge_agent.messages import OFFLINE, ONLINE
from edge_agent.types import Message

log = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30


class Publisher(Protocol):
    """Where the pipeline sends its messages."""

    def publish(self, message: Message) -> None: ...

    def close(self, timeout: float = 10.0) -> None: ...


class MqttPublisher:
    """A paho client that announces ``online``/``offline`` on a retained status topic.

    Args:
        cfg: broker settings.
        client_id: MQTT client id (unique per camera).
        status_topic: retained availability topic; its Last Will is ``offline``.
    """

    def __init__(self, cfg: MQTTConfig, client_id: str, status_topic: str):
        self.cfg = cfg
        self.status_topic = status_topic
        self.connected = threading.Event()
        self._pending: list[mqtt.MQTTMessageInfo] = []
        self._lock = threading.Lock()
        v5 = cfg.protocol == "5"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311)
        if cfg.username is not None:
            self.client.username_pw_set(cfg.username, cfg.password())
        if cfg.tls is not None:
            self.client.tls_set(ca_certs=str(cfg.tls.ca),
                                certfile=str(cfg.tls.cert) if cfg.tls.cert else None,
                                keyfile=str(cfg.tls.key) if cfg.tls.key else None,
                                cert_reqs=ssl.CERT_REQUIRED)
            self.client.tls_insecure_set(cfg.tls.insecure)
        self.client.will_set(status_topic, OFFLINE, qos=1, retain=True)
        self.client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused %s: %s", self.cfg.host, self.cfg.port, client._client_id.decode(),
                      reason)
            return
        log.info("connected to broker %s:%s as %s", self.cfg.host, self.cfg.port, client._client_id.decode())
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("lost broker %s:%s (%s); paho reconnects every %s-%s s", self.cfg.host, self.cfg.port,
                        reason, RECONNECT_MIN_S, RECONNECT_MAX_S)

    def publish(self, message: Message) -> None:
        """Queue a message; QoS 1 messages survive a broker outage while the process runs."""
        info = self.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"publish to {message.topic} failed: {mqtt.error_string(info.rc)}")
        if message.qos > 0:
            with self._lock:
                self._pending = [p for p in self._pending if not p.is_published()] + [info]

    def unacknowledged(self) -> int:
        """QoS 1 messages not yet acknowledged by the broker."""
        with self._lock:
            return sum(not p.is_published() for p in self._pending)

    def close(self, timeout: float = 10.0) -> None:
        """Publish ``offline``, wait up to ``timeout`` s for outstanding PUBACKs, disconnect."""
        bye = self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
        with self._lock:
            pending = [*self._pending, bye]
        deadline = time.monotonic() + timeout
        # MQTTMessageInfo.wait_for_publish raises for messages queued while
        # disconnected (rc NO_CONN), so poll their acknowledgement instead.
        while any(not p.is_published() for p in pending) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = sum(not p.is_published() for p in pending)
        if left:
            log.error("%d message(s) not acknowledged by the broker within %.0f s at shutdown", left, timeout)
        self.client.disconnect()
        self.client.loop_stop()
