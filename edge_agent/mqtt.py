"""Message -> MQTT broker: paho-mqtt 2.x (VERSION2 callbacks) behind a disk spool.

The only module that imports paho. One client per camera, so that each
camera's retained ``status`` topic has its own Last Will: if the process dies,
the broker publishes ``offline`` for every camera it ran.

Delivery (at-least-once, nothing lost):

* :meth:`MqttPublisher.publish` writes the message to the camera's
  :class:`~edge_agent.spool.Spool` and returns; a sender thread takes messages
  from the spool in order and publishes them at QoS 1 while the broker is
  connected, at most ``max_inflight`` unacknowledged at a time and at most
  ``rate`` per second (after an outage a backlog must not overflow a
  subscriber's broker-side queue, which mosquitto caps at 1000 messages by
  default and then drops silently).
* A message leaves the spool only on its PUBACK. Messages in flight when the
  connection drops are resent by paho on reconnect; whatever is still in the
  spool when the process stops is sent after the next start.
* Reconnects are paho's, every 1 s doubling to at most 30 s, so the agent is
  back soon after the broker is.

Latest-value topics (status, health) are published directly, not spooled.
"""

from __future__ import annotations

import collections
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from edge_agent.config import MQTTConfig
from edge_agent.messages import OFFLINE, ONLINE
from edge_agent.spool import Outgoing, Spool
from edge_agent.types import Message

log = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30


class Publisher(Protocol):
    """Where the pipeline sends its messages."""

    def publish(self, message: Message) -> Outgoing: ...

    def publish_latest(self, topic: str, doc: Mapping[str, Any]) -> None: ...

    def close(self, timeout: float = 30.0, abort: threading.Event | None = None) -> None: ...


class MqttPublisher:
    """A camera's MQTT client: spooled QoS 1 messages, retained ``online``/``offline`` status.

    Args:
        cfg: broker settings.
        client_id: MQTT client id (unique per camera).
        status_topic: retained availability topic; its Last Will is ``offline``.
        spool: the camera's durable outbox.
        max_inflight: unacknowledged messages at most.
        rate: messages per second at most (0: unlimited).
    """

    def __init__(self, cfg: MQTTConfig, client_id: str, status_topic: str, spool: Spool,
                 max_inflight: int = 20, rate: float = 50.0):
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        self.cfg = cfg
        self.status_topic = status_topic
        self.spool = spool
        self.max_inflight = max_inflight
        self.rate = rate
        self.connected = threading.Event()
        self.disconnects = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._acks: collections.deque[int] = collections.deque()
        self._inflight: dict[int, int] = {}   # paho mid -> spool id; touched by the sender thread only
        self.on_ack: Callable[[int], None] | None = None  # called with each acknowledged message's spool id
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
        self.client.max_inflight_messages_set(max_inflight + 5)  # room for status/health beside the spool
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
        self.client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name=f"sender-{client_id}", daemon=True)
        self._sender.start()

    # ------------------------------------------------------------ callbacks (paho's thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the connection: %s", self.cfg.host, self.cfg.port, reason)
            return
        log.info("connected to broker %s:%s", self.cfg.host, self.cfg.port)
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        self.connected.set()
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was:
            self.disconnects += 1
        if reason.is_failure:
            log.warning("lost broker %s:%s (%s); reconnecting every %s-%s s, messages wait in the spool",
                        self.cfg.host, self.cfg.port, reason, RECONNECT_MIN_S, RECONNECT_MAX_S)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acks.append(mid)  # processed by the sender thread: no lock shared with paho's
        self._wake.set()

    # ------------------------------------------------------------ sender thread
    def _drain_acks(self) -> None:
        while self._acks:
            mid = self._acks.popleft()
            sid = self._inflight.pop(mid, None)
            if sid is not None:
                self.spool.ack(sid)
                if self.on_ack is not None:
                    self.on_ack(sid)

    def _send_loop(self) -> None:
        last_id = 0
        period = 1.0 / self.rate if self.rate else 0.0
        while True:
            self._drain_acks()
            if self._closing.is_set() and not self.connected.is_set():
                return
            room = self.max_inflight - len(self._inflight)
            batch = self.spool.pending(last_id, room) if room > 0 and self.connected.is_set() else []
            if not batch:
                if self._closing.is_set() and not self._inflight and not self.spool.pending(last_id, 1):
                    return
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            for out in batch:
                info = self.client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    log.error("publish of seq %d to %s failed (%s); it stays in the spool", out.seq, out.topic,
                              mqtt.error_string(info.rc))
                    break
                self._inflight[info.mid] = out.id
                last_id = out.id
                if period:
                    time.sleep(period)
                self._drain_acks()

    # ------------------------------------------------------------ API
    def publish(self, message: Message) -> Outgoing:
        """Spool a message durably; it is sent as soon as the broker allows."""
        out = self.spool.add(message.topic, message.doc, qos=message.qos, retain=message.retain)
        self._wake.set()
        return out

    def publish_latest(self, topic: str, doc: Mapping[str, Any]) -> None:
        """Publish a retained latest-value document (health); not spooled, dropped while offline."""
        if self.connected.is_set():
            self.client.publish(topic, json.dumps(doc, separators=(",", ":")), qos=0, retain=True)

    def unacknowledged(self) -> int:
        """Messages in the spool, in flight or waiting."""
        return self.spool.depth()

    def close(self, timeout: float = 30.0, abort: threading.Event | None = None) -> None:
        """Wait up to ``timeout`` s (or until ``abort``) for the spool to drain, publish ``offline``, disconnect.

        The wait covers a broker that is down right now: paho keeps reconnecting
        meanwhile. Messages still unacknowledged stay in the spool for the next start.
        """
        deadline = time.monotonic() + timeout
        if self.spool.depth():
            log.info("waiting up to %.0f s for the broker to acknowledge %d message(s)%s", timeout,
                     self.spool.depth(), "; interrupt again to leave them in the spool" if abort else "")
        while self.spool.depth() and time.monotonic() < deadline and not (abort and abort.is_set()):
            time.sleep(0.05)
        left = self.spool.depth()
        if left:
            log.warning("%d message(s) not acknowledged at shutdown; kept in %s for the next start", left,
                        self.spool.path)
        self._closing.set()
        self._wake.set()
        if self.connected.is_set():
            bye = self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            while not bye.is_published() and self.connected.is_set() and time.monotonic() < deadline + 2:
                time.sleep(0.02)
        self.client.disconnect()
        self.client.loop_stop()
        self._sender.join(timeout=5)
        self.spool.close()
