"""Dynamic security end to end: what an administrator does with Debian's `mosquitto_ctrl`
(and the raw `$CONTROL/dynamic-security/v1` API), and what real clients then see.

Owns: the black-box dynsec contract of `shared/spec/dynsec.md` (§8 ACL evaluation, §9
authentication, §10 kicks, §11 persistence, §13 bootstrap, §14 limits, §15 the
mosquitto_ctrl mapping), run against Culex and against Debian's Mosquitto 2.0.11 with
its real plugin, so that every expectation is proven on the reference. Where Culex
deliberately differs (`shards/src/dynsec/deviations.rs`), a test asserts Culex's
behaviour for culex and Mosquitto's for mosquitto and names the deviation; tests about
our own file writes, bootstrap and the admin listener are Culex only.
Called by: pytest, per broker kind. Needs mosquitto_ctrl (mosquitto-clients).
"""

from __future__ import annotations

import pytest

import mqttraw as m
from dynsec_helpers import (REFUSED, Admin, connack, ctrl, ctrl_error, expect_kicked,
                            expect_not_kicked, login, publish_rc, start_dynsec,
                            subscribe_codes)

# v5 PUBACK reason codes (spec §8.2 "Outcome on the wire").
OK, NO_SUBSCRIBERS, DENIED = 0x00, 0x10, 0x87


def allowed(rc: int) -> bool:
    return rc in (OK, NO_SUBSCRIBERS)


# --------------------------------------------------------------------------
# 1. mosquitto_ctrl sessions, observed by real clients
# --------------------------------------------------------------------------


def test_ctrl_clients_decide_who_may_connect(start_broker, broker_kind):
    """createClient / getClient / setClientId / setClientPassword / disableClient /
    enableClient / deleteClient through mosquitto_ctrl, each followed by real CONNECTs
    (spec §9) and, for the commands that kick (§10), a connected session of that user
    being disconnected while other users stay."""
    b = start_dynsec(start_broker, broker_kind)
    # Nobody but admin exists; allow_anonymous false refuses username-less clients.
    assert connack(b, "alice", "pw-a1") == REFUSED[5]
    assert connack(b, "alice", "pw-a1", version=4) == REFUSED[4]
    assert connack(b) == REFUSED[5]

    ctrl(b, "createClient", "alice", "-p", "pw-a1")
    assert connack(b, "alice", "pw-a1") == 0
    assert connack(b, "alice", "pw-a1", version=4) == 0
    assert connack(b, "alice", "wrong") == REFUSED[5]
    assert connack(b, "alice", "wrong", version=4) == REFUSED[4]
    assert connack(b, "alice", None) == REFUSED[5], "username without password"
    assert connack(b, "Alice", "pw-a1") == REFUSED[5], "usernames are case-sensitive"
    assert "Username: alice" in ctrl(b, "getClient", "alice").stdout
    assert ctrl_error(b, "createClient", "alice", "-p", "again") == "Client already exists"

    # A client id binding (createClient -c): only that id may log in as bob.
    ctrl(b, "createClient", "bob", "-c", "bob-dev", "-p", "pw-b")
    assert ctrl(b, "getClient", "bob").stdout.startswith("Username: bob\nClientid: bob-dev\n")
    assert connack(b, "bob", "pw-b", client_id="bob-dev") == 0
    assert connack(b, "bob", "pw-b", client_id="bob-other") == REFUSED[5]
    assert connack(b, "bob", "pw-b", client_id="bob-other", version=4) == REFUSED[4]
    assert connack(b, "bob", "pw-b", client_id="") == REFUSED[5], \
        "a v5 empty client id gets an assigned id, which is not the bound one"

    # setClientId moves the binding and kicks bob's session; alice stays.
    bob = login(b, "bob", "pw-b", client_id="bob-dev")
    alice = login(b, "alice", "pw-a1", version=4)
    ctrl(b, "setClientId", "bob", "bob-dev2")
    expect_kicked(bob)
    expect_not_kicked(alice)
    assert connack(b, "bob", "pw-b", client_id="bob-dev") == REFUSED[5]
    assert connack(b, "bob", "pw-b", client_id="bob-dev2") == 0
    # setClientId without an id clears the binding.
    ctrl(b, "setClientId", "bob")
    assert connack(b, "bob", "pw-b", client_id="anything") == 0

    # setClientPassword: the old password stops working, the session is kicked
    # (a 3.1.1 session just sees the close).
    ctrl(b, "setClientPassword", "alice", "pw-a2")
    expect_kicked(alice)
    assert connack(b, "alice", "pw-a1") == REFUSED[5]
    assert connack(b, "alice", "pw-a2") == 0

    # disableClient kicks and refuses; enableClient lets the same password in again.
    alice = login(b, "alice", "pw-a2")
    bob = login(b, "bob", "pw-b")
    ctrl(b, "disableClient", "alice")
    expect_kicked(alice)
    expect_not_kicked(bob)
    assert connack(b, "alice", "pw-a2") == REFUSED[5]
    assert connack(b, "alice", "pw-a2", version=4) == REFUSED[4]
    ctrl(b, "enableClient", "alice")
    assert connack(b, "alice", "pw-a2") == 0

    # deleteClient kicks and refuses for good.
    alice = login(b, "alice", "pw-a2")
    ctrl(b, "deleteClient", "alice")
    expect_kicked(alice)
    expect_not_kicked(bob)
    assert connack(b, "alice", "pw-a2") == REFUSED[5]
    assert ctrl(b, "listClients").stdout.split() == ["admin", "bob"]
    assert ctrl_error(b, "deleteClient", "alice") == "Client not found"
    assert ctrl_error(b, "getClient", "alice") == "Client not found"
