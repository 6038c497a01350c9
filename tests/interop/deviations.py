"""MOSQUITTO_DEVIATIONS: every place where Debian's Mosquitto 2.0.11 departs
from the MQTT specification and the suite therefore expects something
different from Culex than it observes on Mosquitto.

Owns: the list (one entry per deviation: what the spec says, what
Mosquitto 2.0.11 was observed to do, and why the suite sides with the spec).
Called by: differential.Run.per_kind() (scenarios) and test_malformed.py
(cases carry a `deviation=` id). test_malformed.py checks that the list and
the corpus agree: a case whose Mosquitto outcome differs from the spec
outcome must name a deviation here, and every malformed-corpus deviation
here must be used.

`mosquitto` holds the observed value that per_kind() asserts on Mosquitto,
so if a future Mosquitto fixes the deviation, the test says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deviation:
    spec_text: str          # what the spec requires (and Culex is held to)
    mosquitto_text: str     # what Mosquitto 2.0.11 does
    reason: str             # why the suite follows the spec here
    mosquitto: object = field(default=None)  # observed value for per_kind()


class AnyOf:
    """Mosquitto's observed value varies between these (timing dependent)."""

    def __init__(self, *values):
        self.values = values

    def __repr__(self):
        return "AnyOf" + repr(self.values)

    def __eq__(self, other):
        return isinstance(other, AnyOf) and other.values == self.values


# Section references: [MQTT-3.1] = MQTT 3.1 (IBM), [3.1.1] = OASIS MQTT 3.1.1,
# [5.0] = OASIS MQTT 5.0.
MOSQUITTO_DEVIATIONS: dict[str, Deviation] = {
    "v31-client-id-length": Deviation(
        spec_text="[MQTT-3.1] CONNECT: a client id longer than 23 characters is answered "
                  "with CONNACK return code 2 (identifier rejected)",
        mosquitto_text="accepts a 30-character client id on protocol MQIsdp/3 (CONNACK 0)",
        reason="the brief lists 'too-long 3.1 client id' as a refusal the broker must produce",
        mosquitto=0,
    ),
    "overlap-max-qos": Deviation(
        spec_text="[3.1.1] 3.3.5 (MQTT-3.3.5-1): with overlapping subscriptions the server "
                  "MUST deliver the message respecting the maximum QoS of all matching "
                  "subscriptions (ov/+ QoS 0 and ov/# QoS 1, a QoS 1 publish -> QoS 1)",
        mosquitto_text="sends one copy at QoS 0 (the QoS of the first matching subscription)",
        reason="a subscriber that asked for QoS 1 on ov/# loses the at-least-once guarantee",
        mosquitto=[0],
    ),
    "takeover-disconnect": Deviation(
        spec_text="[5.0] 3.1.4-3: when a client id already connected connects again, the "
                  "server sends DISCONNECT 0x8E (session taken over) to the existing client "
                  "and closes its connection",
        mosquitto_text="closes the old v5 connection without a DISCONNECT packet",
        reason="the old client cannot tell a takeover from a network failure and "
               "reconnects, kicking the new one (a reconnect war)",
        mosquitto=None,
    ),
    "keepalive-timeout-disconnect": Deviation(
        spec_text="[5.0] 4.13.2/3.14.2.1: a v5 connection the server closes for keep-alive "
                  "timeout SHOULD get DISCONNECT 0x8D (keep alive timeout) first",
        mosquitto_text="closes the socket without a DISCONNECT",
        reason="the client gets no reason for the close",
        mosquitto=None,
    ),
    "keepalive-late": Deviation(
        spec_text="[3.1.1] 3.1.2.10 / [5.0] 3.1.2.10: no packet within 1.5 x keep alive -> "
                  "the server MUST close the connection (asserted: keepalive 1 s closed "
                  "between 1.0 and 3.0 s)",
        mosquitto_text="checks keep-alive only every few seconds: keepalive 1 s clients were "
                       "closed after 5-6 s (keepalive 5 s: about 12 s)",
        reason="dead clients (and their wills) are detected late",
        mosquitto=AnyOf("late", "on time"),
    ),
}
