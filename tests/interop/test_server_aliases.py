"""Topic aliases from the broker to MQTT 5.0 clients that allow them (§3.3.2.3.4).

Culex gives a client that announced a Topic Alias Maximum aliases for its busiest topics
(at most `max_topic_alias_broker` per listener, Mosquitto 2.1's option); Mosquitto 2.0.11
never sends one. Both brokers run every test: the messages a client gets, resolved, are
the same on both; the bytes differ exactly where Culex uses an alias.

Owns: the exact bytes (raw client), what paho-mqtt and MQTT.js applications see, aliases
ending with the connection (a resend after reconnect names its topic), and the option.
Called by: pytest, once per broker kind.
"""

from __future__ import annotations

import pytest

import mqttraw as m
from pahoclient import PacketTypes, Paho, props
from test_options import only_culex
from test_websockets import MqttJs

LONG = "plant/line-1/cell-4/station-07/sensor-temperature-celsius"  # 57 bytes
PAYLOAD = bytes(range(64))
TOPICS = [f"plant/line-{n}/cell-4/station-07/sensor-temperature" for n in range(6)]


def subscriber(b, client_id, alias_max, clean=True, session_expiry=None, **kw):
    """A raw 5.0 client allowing `alias_max` aliases (None: announces none)."""
    c = m.RawClient(b.host, b.port, version=5, label=client_id)
    properties = {}
    if alias_max is not None:
        properties["topic_alias_maximum"] = alias_max
    if session_expiry is not None:
        properties["session_expiry_interval"] = session_expiry
    ack = c.connect(client_id, version=5, clean=clean, properties=properties, **kw)
    assert ack["reason_code"] == 0, ack
    return c


def publish_all(b, topics, qos=0, payload=PAYLOAD):
    """Publishes one message per topic, in order, from a 5.0 client (acknowledged)."""
    with m.RawClient(b.host, b.port, version=5, label="pub") as p:
        p.connect("sa-pub", version=5)
        for n, topic in enumerate(topics, start=1):
            p.publish(topic, payload, qos=qos, packet_id=n if qos else None)
            if qos:
                p.expect("PUBACK", packet_id=n)
        # A round trip: everything before it has been routed.
        p.subscribe(1, [("sa-pub/sync", 0)])


def receive(c, count):
    return [c.expect("PUBLISH") for _ in range(count)]


def test_first_message_carries_topic_and_alias_then_the_alias_alone(start_broker, broker_kind):
    """The exact bytes: on Culex, PUBLISH 1 is topic + alias 1 and PUBLISH 2 and 3 are an
    empty topic + alias 1 (72 bytes instead of 126 for a 57-byte topic and a 64-byte
    payload); Mosquitto 2.0.11 sends the topic every time."""
    b = start_broker(broker_kind)
    with subscriber(b, "sa-raw", 10) as c:
        c.subscribe(1, [("plant/#", 0)])
        publish_all(b, [LONG] * 3)
        got = [p["_raw"] for p in receive(c, 3)]
    plain = m.publish(LONG, PAYLOAD, version=5)
    if broker_kind == "culex":
        first = m.publish(LONG, PAYLOAD, version=5, properties=[("topic_alias", 1)])
        again = m.publish("", PAYLOAD, version=5, properties=[("topic_alias", 1)])
        assert got == [first, again, again]
        assert (len(plain), len(again)) == (126, 72)
    else:
        assert got == [plain] * 3


def test_no_aliases_for_a_client_that_allows_none(start_broker, broker_kind):
    """A 5.0 client without Topic Alias Maximum (or with 0) gets full topics from both."""
    b = start_broker(broker_kind)
    for alias_max in (None, 0):
        with subscriber(b, f"sa-none-{alias_max}", alias_max) as c:
            c.subscribe(1, [("plant/#", 0)])
            publish_all(b, [LONG] * 2)
            for p in receive(c, 2):
                assert p["topic"] == LONG and "topic_alias" not in p["properties"], p


def test_max_topic_alias_broker_limits_the_aliases(start_broker, broker_kind):
    """`max_topic_alias_broker 2` (Mosquitto 2.1's option): a client allowing 10 aliases
    gets at most 2; `max_topic_alias_broker 0` turns them off."""
    only_culex(broker_kind, "has no max_topic_alias_broker (2.1)")
    for limit, expected in ((2, {1, 2}), (0, set())):
        b = start_broker(broker_kind, [f"max_topic_alias_broker {limit}"])
        with subscriber(b, "sa-limit", 10) as c:
            c.subscribe(1, [("plant/#", 0)])
            publish_all(b, TOPICS[:4] * 2)
            got = receive(c, 8)
        aliases = {p["properties"].get("topic_alias") for p in got} - {None}
        assert aliases == expected, (limit, got)
        b.stop()


def test_a_resend_after_reconnect_names_its_topic(start_broker, broker_kind):
    """Aliases end with the connection: unacknowledged QoS 1 messages come again with DUP,
    the full topic and no alias, and the next message sets an alias up afresh."""
    b = start_broker(broker_kind)
    c = subscriber(b, "sa-keep", 5, session_expiry=60)
    c.subscribe(1, [("plant/#", 1)])
    publish_all(b, [LONG] * 2, qos=1)
    first = receive(c, 2)  # not acknowledged
    if broker_kind == "culex":
        assert [(p["topic"], p["properties"].get("topic_alias")) for p in first] == \
            [(LONG, 1), ("", 1)]
    c.close()
    with subscriber(b, "sa-keep", 5, clean=False, session_expiry=60) as again:
        resent = receive(again, 2)
        assert [p["packet_id"] for p in resent] == [p["packet_id"] for p in first]
        for p in resent:
            assert p["dup"] and p["topic"] == LONG, p
            assert "topic_alias" not in p["properties"], p
            again.send(m.puback(p["packet_id"], version=5))
        publish_all(b, [LONG], qos=1)
        new = again.expect("PUBLISH")
        assert new["topic"] == LONG and not new["dup"]
        assert new["properties"].get("topic_alias") == (1 if broker_kind == "culex" else None)


def test_paho_application_resolving_aliases_gets_every_topic(start_broker, broker_kind):
    """paho-mqtt 2.x passes aliases through to the application (the message's topic is
    empty and `properties.TopicAlias` set); an application that announces a Topic Alias
    Maximum resolves them as the specification says and sees the same messages from both
    brokers, with more topics than aliases."""
    b = start_broker(broker_kind)
    s = Paho(b, "sa-paho")
    try:
        s.connect(properties=props(PacketTypes.CONNECT, TopicAliasMaximum=3))
        s.subscribe("plant/#", 1)
        sent = TOPICS * 3
        publish_all(b, sent, qos=1)
        known, resolved, aliased = {}, [], 0
        for _ in sent:
            msg = s.get()
            alias = getattr(msg.properties, "TopicAlias", None)
            if alias is not None:
                assert 1 <= alias <= 3, alias
                if msg.topic:
                    known[alias] = msg.topic
                else:
                    aliased += 1
            resolved.append(msg.topic or known[alias])
        assert resolved == sent
        assert (aliased > 0) == (broker_kind == "culex"), aliased
    finally:
        s.close()


def test_mqttjs_resolves_aliases_itself(start_broker, broker_kind):
    """MQTT.js with `topicAliasMaximum 3` resolves the broker's aliases: the application
    gets every message on its topic from both brokers; on Culex, aliases were in use."""
    b = start_broker(broker_kind)
    js = MqttJs(f"mqtt://{b.host}:{b.port}", "sa-js", protocol_version=5,
                topic_alias_maximum=3)
    try:
        js.connected()
        assert js.subscribe("plant/#", 1) == [1]
        sent = TOPICS * 3
        publish_all(b, sent, qos=1, payload=b"m")
        got = [js.get() for _ in sent]
        assert [g["topic"] for g in got] == sent
        aliases = {g["alias"] for g in got} - {None}
        if broker_kind == "culex":
            assert aliases and aliases <= {1, 2, 3}, got
        else:
            assert not aliases, got
    finally:
        js.close()


@pytest.mark.parametrize("alias_max", [1, 3])
def test_more_topics_than_aliases_over_many_messages(start_broker, broker_kind, alias_max):
    """A raw client resolving aliases strictly (an unknown alias or one above its maximum
    fails the test) gets 300 messages on 6 topics, in order, from both brokers."""
    b = start_broker(broker_kind)
    with subscriber(b, "sa-many", alias_max) as c:
        c.subscribe(1, [("plant/#", 0)])
        sent = [TOPICS[(n * 7) % 6 if n % 3 else 0] for n in range(300)]
        publish_all(b, sent)
        known, resolved = {}, []
        for p in receive(c, len(sent)):
            alias = p["properties"].get("topic_alias")
            if alias is None:
                resolved.append(p["topic"])
                continue
            assert 1 <= alias <= alias_max, p
            if p["topic"]:
                known[alias] = p["topic"]
            assert alias in known, f"alias {alias} never announced"
            resolved.append(known[alias])
        assert resolved == sent
