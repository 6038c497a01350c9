"""Transcript recording for differential tests.

Owns: `Run`, the context a scripted scenario runs in (brokers it starts,
raw clients whose received packets are recorded), the normalisation that
makes two brokers' transcripts comparable, and `Run.per_kind()`, the one
place a scenario states spec behaviour that Mosquitto departs from.

Called by: test_differential.py (scenarios) and test_malformed.py.

Normalisation (what is *not* compared):
  - server-assigned client ids `auto-<UUID>` become `auto-<uuid>` (the form
    is compared, the random part is not);
  - packet ids the *server* chooses (server->client PUBLISH and PUBREL) are
    renumbered per client label in order of first appearance, so "the same
    id is reused on redelivery" is still compared;
  - the v5 Reason String property is dropped (free text);
  - raw bytes and timing are not recorded; a scenario asserts time bounds
    itself where the behaviour is about time (keepalive, will delay).
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager

import mqttraw as m
from conftest import Broker
from deviations import MOSQUITTO_DEVIATIONS, AnyOf

AUTO_ID = re.compile(r"^auto-[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def normalise_id(s: str) -> str:
    return "auto-<uuid>" if AUTO_ID.match(s) else s


class Run:
    """One execution of one scenario against one broker kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self.transcript: list = []
        self.recording = True
        self._brokers: list[Broker] = []
        self._clients: list[m.RawClient] = []
        self._ids: dict[str, dict[int, int]] = {}
        self._default = None

    # -- resources -------------------------------------------------------
    def broker(self, conf_lines=(), extra_files=None, **kw) -> Broker:
        b = Broker(self.kind, conf_lines, extra_files, **kw)
        self._brokers.append(b)
        return b

    @property
    def default_broker(self) -> Broker:
        if self._default is None:
            self._default = self.broker()
        return self._default

    def client(self, label: str, version=4, broker=None) -> m.RawClient:
        b = broker or self.default_broker
        c = m.RawClient(b.host, b.port, version=version, on_packet=self._on_packet, label=label)
        self._clients.append(c)
        return c

    def close(self):
        for c in self._clients:
            c.close()
        for b in self._brokers:
            b.cleanup()

    # -- recording -------------------------------------------------------
    @contextmanager
    def unrecorded(self):
        """Packets received inside are not part of the transcript (used for
        the parts where Mosquitto deviates; per_kind() checks them)."""
        old, self.recording = self.recording, False
        try:
            yield
        finally:
            self.recording = old

    def note(self, label: str, event: str, detail=None):
        if self.recording:
            self.transcript.append((label, event) if detail is None else (label, event, detail))

    def _on_packet(self, client: m.RawClient, p: dict):
        if self.recording:
            self.transcript.append((client.label, self.normalise(client.label, p)))

    def normalise(self, label: str, p: dict) -> dict:
        q = {k: v for k, v in p.items() if not k.startswith("_")}
        if q["type"] in ("PUBLISH", "PUBREL") and "packet_id" in q:
            ids = self._ids.setdefault(label, {})
            q["packet_id"] = ids.setdefault(q["packet_id"], len(ids) + 1)
        props = q.get("properties")
        if props:
            props = dict(props)
            props.pop("reason_string", None)
            if "assigned_client_identifier" in props:
                props["assigned_client_identifier"] = normalise_id(props["assigned_client_identifier"])
            q["properties"] = props
        return q

    # -- recorded helpers ------------------------------------------------
    def closed(self, c: m.RawClient, timeout=5.0):
        """Assert the server closes `c`; record DISCONNECT (if any) and the close."""
        disc = c.expect_closed(timeout)
        self.note(c.label, "closed")
        return disc

    def nothing(self, c: m.RawClient, duration=0.4):
        c.expect_nothing(duration)
        self.note(c.label, "nothing")

    def per_kind(self, deviation: str, observed, spec):
        """Assert spec behaviour, except on Mosquitto where the recorded
        deviation applies. `observed` is what this broker did."""
        dev = MOSQUITTO_DEVIATIONS[deviation]
        if self.kind == "mosquitto":
            ok = (observed in dev.mosquitto.values) if isinstance(dev.mosquitto, AnyOf) \
                else observed == dev.mosquitto
            assert ok, (
                f"{deviation}: Mosquitto no longer behaves as recorded "
                f"({dev.mosquitto!r}); got {observed!r}. Update deviations.py.")
        else:
            assert observed == spec, f"{deviation}: spec says {spec!r}, got {observed!r} ({dev.spec_text})"


def drain(c: m.RawClient, window=0.5, limit=100) -> list:
    """Collect packets until `window` seconds pass without one."""
    out = []
    for _ in range(limit):
        try:
            p = c.recv_packet(window)
        except m.Closed:
            out.append({"type": "CLOSED"})
            break
        if p is None:
            break
        out.append(p)
    return out


def wait_until(pred, timeout=5.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
