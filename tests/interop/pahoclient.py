"""A synchronous wrapper around paho-mqtt 2.x for tests.

Owns: `Paho`, one paho client with its network loop in a thread and every
callback turned into a queue, so a test can say "connect, subscribe, expect
this message" with bounded waits. Called by: test_paho.py.
"""

from __future__ import annotations

import queue
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
WAIT = 5.0


def props(packet_type, **values) -> Properties:
    """Properties(PUBLISH/CONNECT/...) from keyword names paho uses,
    e.g. props(PacketTypes.PUBLISH, MessageExpiryInterval=5)."""
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


class Paho:
    def __init__(self, broker, client_id, protocol="5", clean=True):
        self.broker = broker
        self.protocol = protocol
        self.v5 = protocol == "5"
        self.clean = clean
        kw = {} if self.v5 else {"clean_session": clean}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=PROTOCOLS[protocol], **kw)
        self.events: "queue.Queue[tuple]" = queue.Queue()
        self.messages: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        c = self.c
        c.on_connect = lambda cl, u, flags, rc, pr: self.events.put(("connect", flags, rc, pr))
        c.on_disconnect = lambda cl, u, flags, rc, pr: self.events.put(("disconnect", rc, pr))
        c.on_subscribe = lambda cl, u, mid, rcs, pr: self.events.put(("subscribe", mid, rcs, pr))
        c.on_unsubscribe = lambda cl, u, mid, rcs, pr: self.events.put(("unsubscribe", mid, rcs, pr))
        c.on_message = lambda cl, u, msg: self.messages.put(msg)
        self.started = False

    def _event(self, kind, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event within {timeout}s")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                raise AssertionError(f"no {kind} event within {timeout}s") from None
            if ev[0] == kind:
                return ev
            if ev[0] == "disconnect" and kind != "disconnect":
                raise AssertionError(f"disconnected (rc={ev[1]}) while waiting for {kind}")

    def connect(self, keepalive=30, properties=None, will=None, expect_ok=True):
        """Connect and return (session_present, reason_code, properties)."""
        if will:
            self.c.will_set(**will)
        kw = {"clean_start": self.clean, "properties": properties} if self.v5 else {}
        self.c.connect(self.broker.host, self.broker.port, keepalive=keepalive, **kw)
        self.c.loop_start()
        self.started = True
        _, flags, rc, pr = self._event("connect")
        if expect_ok:
            assert not rc.is_failure, f"CONNACK refused: {rc}"
        return flags.session_present, rc, pr

    def subscribe(self, topic, qos=0, options=None, properties=None):
        """Subscribe one filter; returns the list of reason codes (as ints)."""
        if self.v5:
            opts = options or SubscribeOptions(qos=qos)
            _, mid = self.c.subscribe(topic, options=opts, properties=properties)
        else:
            _, mid = self.c.subscribe(topic, qos)
        ev = self._event("subscribe")
        assert ev[1] == mid
        return [int(getattr(rc, "value", rc)) for rc in ev[2]]

    def unsubscribe(self, topic):
        _, mid = self.c.unsubscribe(topic)
        ev = self._event("unsubscribe")
        return [int(getattr(rc, "value", rc)) for rc in ev[2]]

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(WAIT)
        assert info.is_published(), f"publish to {topic} not completed"
        return info

    def get(self, timeout=WAIT) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout}s") from None

    def get_all(self, window=0.5) -> list:
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=window))
            except queue.Empty:
                return out

    def no_message(self, duration=0.4):
        try:
            msg = self.messages.get(timeout=duration)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {msg.topic}: {msg.payload!r}")

    def wait_disconnect(self, timeout=WAIT):
        ev = self._event("disconnect", timeout)
        return ev[1], ev[2]

    def disconnect(self, properties=None):
        if self.started:
            self.c.disconnect(properties=properties) if self.v5 else self.c.disconnect()
            self.c.loop_stop()
            self.started = False

    def drop(self):
        """Lose the connection without DISCONNECT (socket closed under paho)."""
        sock = self.c.socket()
        self.c.loop_stop()
        self.started = False
        if sock is not None:
            sock.close()

    def close(self):
        try:
            self.disconnect()
        except Exception:  # noqa: BLE001 - best effort cleanup
            self.c.loop_stop()


__all__ = ["Paho", "props", "PacketTypes", "SubscribeOptions", "Properties"]
