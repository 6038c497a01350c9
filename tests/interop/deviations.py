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
    "wrong-ack-type-without-disconnect": Deviation(
        spec_text="[3.1.1] 4.8.0-1 / [5.0] 4.13.1: an acknowledgement of the wrong type "
                  "(PUBREC or PUBCOMP for a QoS 1 message, PUBACK or PUBCOMP before the "
                  "PUBREC of a QoS 2 message, PUBACK in reply to PUBREL) is a protocol "
                  "error: close, a v5 client SHOULD get DISCONNECT 0x82 first",
        mosquitto_text="closes the connection without a DISCONNECT",
        reason="the client gets no reason for the close",
        mosquitto=None,
    ),
    "maximum-packet-size-counts-whole-packet": Deviation(
        spec_text="[5.0] 3.1.2.11.4: the Maximum Packet Size is the total number of bytes "
                  "in an MQTT Control Packet; the server MUST NOT send a larger one "
                  "(MQTT-3.1.2-24): an 11-byte CONNACK is not sent to a client whose "
                  "maximum is 10",
        mosquitto_text="counts the remaining length and its length bytes but not the "
                       "first byte of the fixed header, so it sends the 11-byte CONNACK",
        reason="the specification counts the whole packet",
        mosquitto=("open", ["CONNACK"]),
    ),
    "maximum-packet-size-only-connack-publish": Deviation(
        spec_text="[5.0] 3.1.2-24: no packet the server sends may exceed the client's "
                  "Maximum Packet Size; a SUBACK that would is not sent (its optional "
                  "properties go first, 3.9.2-1) and the connection is closed",
        mosquitto_text="checks the size of CONNACK, AUTH and PUBLISH only: a 25-byte "
                       "SUBACK goes to a client whose maximum is 20",
        reason="the client asked not to receive packets that large",
        mosquitto=("open", ["SUBACK"]),
    ),
    "message-size-limit-ack-code": Deviation(
        spec_text="[5.0] 3.4.2.1 / 3.5.2.1: PUBACK and PUBREC carry one of their listed "
                  "reason codes; 0x97 (quota exceeded) is the one for an administrative "
                  "limit such as message_size_limit",
        mosquitto_text="answers a PUBLISH over message_size_limit with reason 0x95 (packet "
                       "too large), which is not a PUBACK or PUBREC reason code",
        reason="a client may treat an unlisted reason code as a protocol error",
        mosquitto=0x95,
    ),
    "will-delay-beyond-session-end": Deviation(
        spec_text="[5.0] 3.1.3.2.2 (MQTT-3.1.3-9): the server delays the will until the Will "
                  "Delay Interval has passed or the session ends, whichever happens first; "
                  "with Session Expiry 0 the session ends with the connection",
        mosquitto_text="waits the full will delay even though the session has ended",
        reason="the will is late by the delay, for a session that no longer exists",
        mosquitto="after delay",
    ),
    "will-dropped-on-clean-start": Deviation(
        spec_text="[5.0] 3.1.3.2.2 (MQTT-3.1.3-9), 3.1.2.4: a Clean Start reconnect ends "
                  "the old session, and a delayed will goes out when its session ends",
        mosquitto_text="discards the pending will when the client reconnects with Clean "
                       "Start, so it is never published",
        reason="subscribers never learn that the client went away uncleanly",
        mosquitto=None,
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

    # ---- malformed-input corpus (test_malformed.py); the observed outcome is
    # recorded per case there, so `mosquitto` only marks the group ----
    "v5-error-without-disconnect": Deviation(
        spec_text="[5.0] 4.13.1: on a malformed packet or protocol error in a packet other "
                  "than CONNECT the server SHOULD send DISCONNECT with the reason code "
                  "(0x81 malformed, 0x82 protocol error, ...) before closing",
        mosquitto_text="closes without DISCONNECT for: a 5-byte remaining length, "
                       "duplicate PUBLISH properties, PUBREL with flags 0, AUTH without an "
                       "authentication method, AUTH with reserved flags (most other v5 "
                       "errors do get a DISCONNECT; a second CONNECT and a CONNACK from a "
                       "client are closed silently by both brokers)",
        reason="the client (and its user's logs) get no reason for the close",
        mosquitto="malformed-corpus",
    ),
    "server-packet-from-client-ignored": Deviation(
        spec_text="[3.1.1] 4.8 / [5.0] 4.13: a packet type only a server may send (SUBACK, "
                  "PINGRESP) received from a client is a protocol violation: close (v5: "
                  "DISCONNECT 0x81/0x82 first)",
        mosquitto_text="ignores a client's SUBACK (v5) and PINGRESP (3.1.1) and keeps the "
                       "connection open (a client's CONNACK does close it)",
        reason="a confused or hostile client is left connected",
        mosquitto="malformed-corpus",
    ),
    "fixed-header-not-validated": Deviation(
        spec_text="[3.1.1] 2.2.2-2 / [5.0] 2.1.3: reserved fixed-header flag bits that are "
                  "not as specified (PUBACK/PUBREC/PUBCOMP/PINGREQ flags 0) make the packet "
                  "malformed: close (v5: DISCONNECT 0x81); a PINGREQ has remaining length 0",
        mosquitto_text="accepts PUBACK, PUBREC, PUBCOMP and PINGREQ with flag bits set, and "
                       "a PINGREQ with a body, and answers them normally (PUBREL, PINGRESP)",
        reason="the broker must reject malformed packets rather than guess",
        mosquitto="malformed-corpus",
    ),
    "publish-subscription-id-accepted": Deviation(
        spec_text="[5.0] 3.3.4-6: a PUBLISH from a client MUST NOT contain a Subscription "
                  "Identifier; receiving one is a protocol error (DISCONNECT 0x82)",
        mosquitto_text="accepts the PUBLISH and keeps the connection open",
        reason="spec MUST",
        mosquitto="malformed-corpus",
    ),
    "shared-no-local-accepted": Deviation(
        spec_text="[5.0] 3.8.3-4: it is a protocol error to set No Local on a shared "
                  "subscription (DISCONNECT 0x82)",
        mosquitto_text="grants the subscription (SUBACK 0x00)",
        reason="spec MUST",
        mosquitto="malformed-corpus",
    ),
    "malformed-instead-of-protocol-error": Deviation(
        spec_text="[5.0] 3.8.3-2, 3.10.3-2, 3.8.2.1.2: SUBSCRIBE or UNSUBSCRIBE without "
                  "topic filters, and Subscription Identifier 0, are protocol errors "
                  "(DISCONNECT 0x82)",
        mosquitto_text="sends DISCONNECT 0x81 (malformed packet)",
        reason="the reason code names the wrong class of error",
        mosquitto="malformed-corpus",
    ),
    "receive-maximum-not-enforced": Deviation(
        spec_text="[5.0] 3.3.4-9 / 4.9: a client that sends more QoS 1/2 PUBLISHes than the "
                  "Receive Maximum the server announced (20) without completing them gets "
                  "DISCONNECT 0x93 (receive maximum exceeded)",
        mosquitto_text="answers the first 20 unreleased QoS 2 PUBLISHes with PUBREC and the "
                       "21st with PUBREC 0x97 (quota exceeded), and keeps the connection open",
        reason="flow control the broker announces should be enforced, or one client can "
               "hold unbounded in-flight state",
        mosquitto="malformed-corpus",
    ),
    "no-connect-timeout": Deviation(
        spec_text="[3.1.1] 3.1.4 / [5.0] 3.1.4: a server that does not receive a CONNECT "
                  "within a reasonable time SHOULD close the connection (asserted: a "
                  "partial CONNECT is closed within 30 s)",
        mosquitto_text="keeps a half-sent CONNECT (and a connection that sends nothing) open for "
                       "about 95 s (measured once with a "
                       "200 s window; it seems to apply its 60 s default keep alive x 1.5); "
                       "the corpus watches it for 3 s only",
        reason="slow-loris connections tie up sockets; Culex should time them out sooner",
        mosquitto="malformed-corpus",
    ),
    "close-resets-sending-client": Deviation(
        spec_text="[5.0] 4.13 / 3.14: a server that ends a connection for an error tells the "
                  "client why (DISCONNECT, or a refusing CONNACK) before it closes; and a "
                  "client may keep sending meanwhile ([5.0] 3.1.4: packets right after "
                  "CONNECT). Closing a TCP socket while the client's bytes are unread or "
                  "still arriving resets the connection (RFC 1122 4.2.2.13), so the suite "
                  "holds the broker to closing as careful servers do: shut down the write "
                  "side after the last packet, read and discard for a bounded time, close",
        mosquitto_text="sends DISCONNECT (0x95) or CONNACK (0x87), or nothing on a takeover, "
                       "and closes the socket at once: a client that goes on publishing gets "
                       "ECONNRESET or EPIPE on its next write (SSLEOFError through "
                       "Python's TLS; on Linux the packet stays readable after the reset)",
        reason="a client library that treats a failed write as a lost connection (paho does) "
               "never reads the reason code, and cannot tell a refusal or takeover from a "
               "network failure",
        mosquitto=AnyOf("ECONNRESET", "EPIPE", "SSLEOFError"),
    ),
}
