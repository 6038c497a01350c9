"""A history of what MQTT clients sent, were acknowledged and received, and the checker
that decides whether a broker (a cluster through failovers) kept its promises. Pure: the
clients of test_failover_history.py record into a `History`; `check` reads it.

What `check` asserts, for publishes at QoS 1 or 2 to subscribers with persistent sessions:
- every acknowledged publish (PUBACK at QoS 1, PUBREC at QoS 2) reached every subscriber
  whose subscriptions match its topic: at least once (QoS 1), exactly once (QoS 2);
- no publish reached a subscriber twice at QoS 2, acknowledged or not;
- per publisher, each subscriber first received its messages in the order they were sent;
- nothing was delivered that no publisher sent, or to a subscriber it does not match;
- every reconnect of a persistent session found it (session present);
- each retained topic holds, at the end, the last acknowledged retained publish to it or a
  later one that was sent (unacknowledged sends may or may not have been taken).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching (`+` one level, `#` the rest)."""
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


@dataclass
class History:
    """Thread-safe record of one run. Messages are identified by (publisher, seq)."""

    qos: int
    # (publisher, seq) -> topic, for every publish sent (acknowledged or not).
    sent: dict = field(default_factory=dict)
    acked: set = field(default_factory=set)
    # (publisher, seq) -> retained topic, for publishes sent with the retain flag.
    retained_sent: dict = field(default_factory=dict)
    # subscriber -> its filters.
    filters: dict = field(default_factory=dict)
    # subscriber -> [(publisher, seq, topic, time)], every delivery in arrival order.
    deliveries: dict = field(default_factory=dict)
    # subscriber -> [session_present of each reconnect].
    reconnects: dict = field(default_factory=dict)
    # retained topic -> (publisher, seq) or None, as read at the end.
    retained_final: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, publisher: str, seq: int, topic: str, retain=False):
        with self.lock:
            self.sent[(publisher, seq)] = topic
            if retain:
                self.retained_sent[(publisher, seq)] = topic

    def ack(self, publisher: str, seq: int):
        with self.lock:
            self.acked.add((publisher, seq))

    def subscribed(self, subscriber: str, filters: list[str]):
        with self.lock:
            self.filters[subscriber] = list(filters)
            self.deliveries.setdefault(subscriber, [])
            self.reconnects.setdefault(subscriber, [])

    def deliver(self, subscriber: str, publisher: str, seq: int, topic: str):
        with self.lock:
            self.deliveries[subscriber].append((publisher, seq, topic, time.monotonic()))

    def reconnected(self, subscriber: str, session_present: bool):
        with self.lock:
            self.reconnects[subscriber].append(session_present)

    def missing(self) -> int:
        """Acknowledged (publish, subscriber) pairs not delivered yet (to wait on)."""
        with self.lock:
            count = 0
            for sub, filters in self.filters.items():
                got = {(p, s) for p, s, _, _ in self.deliveries[sub]}
                for key in self.acked:
                    if key not in got and any(matches(f, self.sent[key]) for f in filters):
                        count += 1
            return count


def check(h: History, limit=20) -> list[str]:
    """The violations in `h` (at most `limit` of each kind listed); empty when it holds."""
    problems: list[str] = []

    def report(kind: str, items: list):
        if items:
            shown = ", ".join(str(i) for i in items[:limit])
            more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
            problems.append(f"{kind}: {shown}{more}")

    for sub, filters in sorted(h.filters.items()):
        counts: dict = {}
        phantom, wrong, order = [], [], []
        last_first: dict = {}
        for pub, seq, topic, _ in h.deliveries[sub]:
            key = (pub, seq)
            if h.sent.get(key) != topic:
                phantom.append((sub, pub, seq, topic))
                continue
            if not any(matches(f, topic) for f in filters):
                wrong.append((sub, pub, seq, topic))
            counts[key] = counts.get(key, 0) + 1
            if counts[key] == 1:
                if seq < last_first.get(pub, -1):
                    order.append((sub, pub, seq, "after", last_first[pub]))
                last_first[pub] = max(seq, last_first.get(pub, -1))
        lost = sorted(
            key for key in h.acked
            if counts.get(key, 0) == 0 and any(matches(f, h.sent[key]) for f in filters))
        twice = sorted(key for key, n in counts.items() if n > 1) if h.qos == 2 else []
        report(f"{sub}: acknowledged and never delivered", lost)
        report(f"{sub}: delivered more than once at QoS 2", twice)
        report(f"{sub}: delivered but never published", phantom)
        report(f"{sub}: delivered without a matching subscription", wrong)
        report(f"{sub}: out of publisher order", order)
        absent = [i for i, present in enumerate(h.reconnects[sub]) if not present]
        report(f"{sub}: reconnects that found no session", absent)

    for topic in sorted(set(h.retained_sent.values())):
        sends = sorted((seq, pub) for (pub, seq), t in h.retained_sent.items() if t == topic)
        acked = [(seq, pub) for seq, pub in sends if (pub, seq) in h.acked]
        final = h.retained_final.get(topic)
        allowed = {(pub, seq) for seq, pub in sends if not acked or seq >= acked[-1][0]}
        if acked and final not in allowed:
            report(f"retained {topic}", [f"holds {final}, last acknowledged {acked[-1]}"])
    return problems
