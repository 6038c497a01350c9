"""Global `mosquitto.conf` options whose effect no other file shows, observed by real
clients on both brokers: `clientid_prefixes` (an access restriction).

Owns: the user-visible effect of those options. Listener, TLS, WebSocket, persistence,
`$SYS` and security options have their own files; docs/configuration.md names, for every
option, the test that shows its effect.
Called by: pytest, once per broker kind.
"""

from __future__ import annotations

import mqttraw as m


def threads(kind):
    """Culex runs two shards: the option must hold on whichever one a client lands."""
    return ["threads 2"] if kind == "culex" else []

# (protocol version, client id) -> accepted?
PREFIX_CASES = [
    (3, "sensor-1", True), (3, "xyz", False),
    (4, "sensor-1", True), (4, "xyz", False), (4, "sensor", False), (4, "Sensor-1", False),
    (4, "", False),  # the assigned id (auto-...) does not carry the prefix either
    (5, "sensor-1", True), (5, "xyz", False), (5, "", False),
]


def test_clientid_prefixes_refuses_other_ids(start_broker, broker_kind):
    """`clientid_prefixes sensor-`: a client whose id does not start with the prefix is
    refused with CONNACK "not authorised" (5 on 3.1/3.1.1, 0x87 on 5.0), as Mosquitto does;
    the option is deprecated in Mosquitto, and both brokers say so."""
    b = start_broker(broker_kind, [*threads(broker_kind), "clientid_prefixes sensor-"])
    seen = []
    for version, client_id, accepted in PREFIX_CASES:
        with m.RawClient(b.host, b.port) as c:
            connack = c.connect(client_id, version=version)
            seen.append((version, client_id, connack["reason_code"]))
            if accepted:
                c.subscribe(1, [("prefix/t", 0)])
                c.publish("prefix/t", b"in")
                assert c.expect("PUBLISH")["payload"] == b"in"
            else:
                c.expect_closed()
    expected = [(v, cid, 0 if ok else (0x87 if v == 5 else 5)) for v, cid, ok in PREFIX_CASES]
    assert seen == expected
    assert "The 'clientid_prefixes' option is now deprecated" in b.log()
    assert "disconnected, not authorised." in b.log(), b.log()
