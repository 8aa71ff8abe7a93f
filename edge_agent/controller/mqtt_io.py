"""The controller's MQTT client: the agent's publisher (credentials, TLS, retained online/offline) plus subscriptions.

Subscriptions (``{p}`` is the topic prefix, ``G`` the share group)::

    $share/G/{p}/+/stats, $share/G/{p}/+/events     split between the replicas of group G
    {p}/+/status                                     plain: MQTT 5 sends no retained messages to shared
                                                     subscriptions, and every replica needs the states
    {p}/+/presence, {p}/lighting/+/meter,            plain, deciding replicas only: they feed in-memory
    {p}/services/+/choice                            state of the decision round

Acknowledged once stored: the client runs with paho's ``manual_ack``; each
message's PUBACK is sent by the ingest's writer thread after the transaction
that stores it commits (``Ingestor.handle(..., ack=)``), in the order the
messages came. The session persists ``mqtt.session_expiry_s`` after a
disconnect (MQTT 5 session expiry; clean_session false with 3.1.1), so a replica
that crashes and comes back with the same client_id is sent again what it had
received but not stored. An acknowledgement from before a reconnect is not sent
on the new connection (the broker resends those messages anyway).

Broker settings for a controller under load (mosquitto.conf): ``max_queued_messages``
(default 1000) and ``max_inflight_messages`` bound what the broker holds for a
slow subscriber; above them QoS 1 messages are *dropped* for it. Set
``max_queued_messages 100000`` (or 0 for no limit) for the controller's session;
gaps are detected from the statistics' per-camera ``seq`` when the agent sends it.
Since messages are acknowledged per committed batch, ``max_inflight_messages``
(default 20) caps a batch: set it to ``store.batch_max`` or more (or 0) for
throughput.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.controller.config import ControllerMQTT

log = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
ONLINE, OFFLINE = b"online", b"offline"


@dataclass(frozen=True, slots=True)
class Outbound:
    """A decision ready to publish (serialised JSON)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


def controller_status_topic(prefix: str, client_id: str) -> str:
    """Four levels, so that the nodes' ``{prefix}/+/status`` filter never matches it."""
    return f"{prefix}/controller/{client_id}/status"


def subscriptions(cfg: ControllerMQTT, decide: bool) -> list[tuple[str, int]]:
    p, q = cfg.topic_prefix, cfg.qos
    shared = [f"{p}/+/stats", f"{p}/+/events"]
    if cfg.share_group:
        shared = [f"$share/{cfg.share_group}/{t}" for t in shared]
    plain = [f"{p}/+/status"]
    if decide:
        plain += [f"{p}/+/presence", f"{p}/lighting/+/meter", f"{p}/services/+/choice"]
    return [(t, q) for t in shared + plain]


class ControllerClient:
    """Subscribes, hands every message to ``on_message(topic, payload, received_at, ack)``, publishes decisions.

    ``ack`` (None for QoS 0) sends the message's acknowledgement; the receiver
    calls it once the message is stored.

    Credentials and TLS as the agents' (``mqtt`` section); a retained
    ``online``/``offline`` on :func:`controller_status_topic` with ``offline``
    as the Last Will. Subscriptions are renewed on every reconnect.
    """

    def __init__(self, cfg: ControllerMQTT, on_message: Callable[..., None],
                 topics: Sequence[tuple[str, int]]):
        self.cfg = cfg
        self._deliver = on_message
        self._topics = list(topics)
        self.status_topic = controller_status_topic(cfg.topic_prefix, cfg.client_id)
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._unsubscribed = threading.Event()
        self._v5 = cfg.protocol == "5"
        self._generation = 0  # connections so far: an ack from an earlier one is not sent on this one
        v5 = cfg.protocol == "5"
        persistent = cfg.session_expiry_s > 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
                                  clean_session=None if v5 else not persistent, manual_ack=True)
        if cfg.username is not None:
            self.client.username_pw_set(cfg.username, cfg.password())
        if cfg.tls is not None:
            self.client.tls_set(ca_certs=str(cfg.tls.ca), certfile=str(cfg.tls.cert) if cfg.tls.cert else None,
                                keyfile=str(cfg.tls.key) if cfg.tls.key else None, cert_reqs=ssl.CERT_REQUIRED)
            self.client.tls_insecure_set(cfg.tls.insecure)
        self.client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        self.client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self.client.max_queued_messages_set(10000)  # decisions queued while disconnected, bounded
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = lambda *args: self._unsubscribed.set()
        self.client.on_message = self._on_message
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = cfg.session_expiry_s
            self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive, clean_start=not persistent,
                                      properties=props)
        else:
            self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the controller: %s", self.cfg.host, self.cfg.port, reason)
            return
        self._generation += 1
        log.info("connected to broker %s:%s as %s (session %s)", self.cfg.host, self.cfg.port, self.cfg.client_id,
                 "resumed" if getattr(flags, "session_present", False) else "new")
        client.publish(self.status_topic, ONLINE, qos=1, retain=True)
        self.connected.set()
        client.subscribe(self._topics)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if reason.is_failure:
            log.warning("lost broker %s:%s (%s); reconnecting every %s-%s s", self.cfg.host, self.cfg.port, reason,
                        RECONNECT_MIN_S, RECONNECT_MAX_S)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        bad = [(t, r) for (t, _), r in zip(self._topics, reasons) if r.is_failure]
        for t, r in bad:
            log.error("broker refused the subscription %s: %s", t, r)
        if not bad:
            log.info("subscribed to %s", ", ".join(t for t, _ in self._topics))
            self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ack = functools.partial(self._ack, msg.mid, msg.qos, self._generation) if msg.qos else None
        self._deliver(msg.topic, msg.payload, time.time(), ack)

    def _ack(self, mid: int, qos: int, generation: int) -> None:
        if generation == self._generation:
            self.client.ack(mid, qos)

    def publish(self, message: Outbound) -> None:
        info = self.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.error("publish to %s failed: %s", message.topic, mqtt.error_string(info.rc))

    def stop_receiving(self, timeout: float = 5.0) -> None:
        """Unsubscribe (waiting up to ``timeout`` s for the broker's answer): no new message comes after it."""
        if self.connected.is_set():
            self._unsubscribed.clear()
            self.client.unsubscribe([t for t, _ in self._topics])
            self._unsubscribed.wait(timeout)

    def close(self, timeout: float = 5.0, end_session: bool = True) -> None:
        """Publish ``offline``, give queued decisions up to ``timeout`` s, disconnect.

        With ``end_session`` (MQTT 5) the broker drops this client's session at
        once: call it after everything received was stored and acknowledged, so
        that a replica stopped for good stops getting its share of the group's
        messages. Without it (e.g. the store failed) the session stays for
        ``session_expiry_s`` and what was not acknowledged is sent again.
        """
        if self.connected.is_set():
            bye = self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            deadline = time.monotonic() + timeout
            while not bye.is_published() and time.monotonic() < deadline:
                time.sleep(0.02)
        props = None
        if self._v5 and end_session:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()
