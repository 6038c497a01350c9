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

import json
import os
import random
import subprocess
import time

import pytest

import mqttraw as m
from conftest import broker_binary, free_port, require_tool
from dynsec_helpers import (ADMIN_PASSWORD, FILE_NAME, GOLDEN, REFUSED, REQUEST_TOPIC,
                            Admin, connack, ctrl, ctrl_error, dynsec_lines, dynsec_path,
                            expect_kicked, expect_not_kicked, file_stamp, golden,
                            golden_payload, init_file, login, publish_rc, start_dynsec,
                            subscribe_codes)

# Printed by mosquitto_ctrl on stderr for every connection without TLS.
CTRL_WARNING = ("Warning: You are running mosquitto_ctrl without encryption.\n"
                "This means all of the configuration changes you are making are visible on "
                "the network, including passwords.\n\n")

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


class Flow:
    """A publisher and a subscriber (subscribed to `#`, spec §8.3: `#` skips `$`
    topics) of the same broker; `check()` publishes and reports what arrived.

    Receive-side denials are silent, so after the topics under test a marker is
    published on `marker_topic` (which both users may use) and everything the
    subscriber got before the marker is the answer — no sleeps."""

    def __init__(self, broker, pub_user, pub_pw, sub_user, sub_pw, marker_topic="t/marker"):
        self.b = broker
        self.pub_cred = (pub_user, pub_pw)
        self.sub_cred = (sub_user, sub_pw)
        self.marker_topic = marker_topic
        self.pid = 0
        self.pub = None
        self.sub = None

    def connect_pub(self, version=5):
        self.pub = login(self.b, *self.pub_cred, version=version)

    def connect_sub(self):
        self.sub = login(self.b, *self.sub_cred)
        assert subscribe_codes(self.sub, "#") == [1]

    def send(self, topic: str) -> int:
        self.pid += 1
        return publish_rc(self.pub, topic, f"to {topic}".encode(), packet_id=self.pid)

    def check(self, *topics: str) -> tuple[list[int], list[str]]:
        """PUBACK codes of QoS 1 publishes to `topics` and the topics the subscriber
        received (in order, up to the marker)."""
        codes = [self.send(t) for t in topics]
        assert allowed(self.send(self.marker_topic)), "the marker must be publishable"
        got = []
        while True:
            p = self.sub.expect("PUBLISH")
            if p["qos"]:
                self.sub.send(m.puback(p["packet_id"], version=5))
            if p["topic"] == self.marker_topic:
                return codes, got
            got.append(p["topic"])


def test_ctrl_roles_and_acls_decide_what_is_published_and_delivered(start_broker, broker_kind):
    """createRole / addRoleACL (publishClientSend, publishClientReceive, allow/deny,
    priorities) / addClientRole / removeClientRole / removeRoleACL / groups
    (createGroup, addGroupRole, addGroupClient, removeGroupRole, removeGroupClient) /
    deleteRole through mosquitto_ctrl; after each change a v5 publisher's PUBACK (0x87
    when denied, spec §8.2) and what a subscriber receives. Every change to a holder's
    rights kicks it (§10); it reconnects before the next check."""
    b = start_dynsec(start_broker, broker_kind)
    for user in ("pub", "sub"):
        ctrl(b, "createClient", user, "-p", f"pw-{user}")
    ctrl(b, "createRole", "reader")
    ctrl(b, "addRoleACL", "reader", "subscribePattern", "#", "allow")
    ctrl(b, "addClientRole", "sub", "reader")
    # The marker topic is always allowed for pub, through a role at the lowest priority.
    ctrl(b, "createRole", "marker")
    ctrl(b, "addRoleACL", "marker", "publishClientSend", "t/marker", "allow")
    ctrl(b, "addClientRole", "pub", "marker", "-100")
    f = Flow(b, "pub", "pw-pub", "sub", "pw-sub")
    f.connect_pub()
    f.connect_sub()

    # Default access (send deny, from dynsec init): nothing but the marker gets through.
    assert f.check("t/a") == ([DENIED], [])

    # A role with a publishClientSend allow, given to pub: pub is kicked, then may send.
    ctrl(b, "createRole", "writer")
    ctrl(b, "addRoleACL", "writer", "publishClientSend", "t/#", "allow")
    expect_not_kicked(f.pub)  # pub does not hold `writer` yet
    ctrl(b, "addClientRole", "pub", "writer")
    expect_kicked(f.pub)
    expect_not_kicked(f.sub)
    f.connect_pub()
    assert f.check("t/a", "u/a") == ([OK, DENIED], ["t/a"])

    # A deny at a higher priority inside the same role wins for its topic only.
    ctrl(b, "addRoleACL", "writer", "publishClientSend", "t/secret", "deny", "5")
    expect_kicked(f.pub)
    f.connect_pub()
    assert f.check("t/secret", "t/a") == ([DENIED, OK], ["t/a"])
    assert ctrl_error(b, "addRoleACL", "writer", "publishClientSend", "t/secret", "allow") \
        == "ACL with this topic already exists"

    # Role priority: a role held at priority 10 is consulted before `writer` (-1).
    ctrl(b, "createRole", "override")
    ctrl(b, "addRoleACL", "override", "publishClientSend", "t/secret", "allow")
    ctrl(b, "addClientRole", "pub", "override", "10")
    expect_kicked(f.pub)
    f.connect_pub()
    assert f.check("t/secret") == ([OK], ["t/secret"])
    ctrl(b, "removeClientRole", "pub", "override")
    expect_kicked(f.pub)
    f.connect_pub()
    assert f.check("t/secret") == ([DENIED], [])

    # removeRoleACL takes the deny away again.
    ctrl(b, "removeRoleACL", "writer", "publishClientSend", "t/secret")
    expect_kicked(f.pub)
    f.connect_pub()
    assert f.check("t/secret") == ([OK], ["t/secret"])
    assert ctrl_error(b, "removeRoleACL", "writer", "publishClientSend", "t/secret") \
        == "ACL not found"

    # publishClientReceive deny on the subscriber's role: the publish is accepted
    # (not 0x87) but never delivered; other topics still are.
    ctrl(b, "addRoleACL", "reader", "publishClientReceive", "t/private", "deny")
    expect_kicked(f.sub)
    expect_not_kicked(f.pub)
    f.connect_sub()
    codes, got = f.check("t/private", "t/a")
    assert codes[0] != DENIED and codes[1] == OK and got == ["t/a"]

    # MQTT 3.1.1: a denied publish still gets a plain PUBACK and is dropped silently.
    f.connect_pub(version=4)
    assert f.check("u/a", "t/a") == ([0, 0], ["t/a"])
    f.connect_pub()

    # Groups: a group's roles apply to its members (addGroupClient kicks the member).
    ctrl(b, "createGroup", "pubs")
    ctrl(b, "createRole", "grpwriter")
    ctrl(b, "addRoleACL", "grpwriter", "publishClientSend", "g/#", "allow")
    ctrl(b, "addGroupRole", "pubs", "grpwriter")
    expect_not_kicked(f.pub)  # not a member yet
    assert f.check("g/x") == ([DENIED], [])
    ctrl(b, "addGroupClient", "pubs", "pub")
    expect_kicked(f.pub)
    f.connect_pub()
    assert f.check("g/x") == ([OK], ["g/x"])
    assert "Groupname: pubs" in ctrl(b, "getGroup", "pubs").stdout

    # All of a client's own roles are checked before any group role, whatever the
    # priorities (spec §8.2): the group's high-priority deny does not beat writer.
    ctrl(b, "addRoleACL", "grpwriter", "publishClientSend", "t/a", "deny", "100")
    expect_kicked(f.pub)  # a group member holds grpwriter
    f.connect_pub()
    assert f.check("t/a", "g/x") == ([OK, OK], ["t/a", "g/x"])

    # removeGroupRole / removeGroupClient take the group's rights away (and kick).
    ctrl(b, "removeGroupRole", "pubs", "grpwriter")
    expect_kicked(f.pub)
    f.connect_pub()
    assert f.check("g/x") == ([DENIED], [])
    ctrl(b, "addGroupRole", "pubs", "grpwriter", "1")
    expect_kicked(f.pub)
    f.connect_pub()
    assert f.check("g/x") == ([OK], ["g/x"])
    ctrl(b, "removeGroupClient", "pubs", "pub")
    expect_kicked(f.pub)
    f.connect_pub()
    assert f.check("g/x") == ([DENIED], [])

    # deleteRole removes the role from its holders (and kicks them).
    ctrl(b, "deleteRole", "writer")
    expect_kicked(f.pub)
    f.connect_pub()
    assert f.check("t/a") == ([DENIED], [])
    assert ctrl(b, "listRoles").stdout.split() == [
        "admin", "grpwriter", "marker", "override", "reader"]


def test_ctrl_subscribe_acls_and_default_access(start_broker, broker_kind):
    """subscribeLiteral / subscribePattern with allow, deny and priorities (SUBACK 0x87
    on v5, 0x80 on 3.1.1), then default access: Debian 2.0.11's `mosquitto_ctrl
    setDefaultACLAccess` sends `"access":"allow"` which the API ignores (spec §15, kept
    by Culex), so the change is made with the raw API; it applies to connected clients
    without a kick, never grants `$CONTROL/...`, and covers all four ACL types."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    ctrl(b, "createClient", "sam", "-p", "pw-sam")
    ctrl(b, "createRole", "subs")
    ctrl(b, "addRoleACL", "subs", "subscribeLiteral", "lit/#", "allow")
    ctrl(b, "addRoleACL", "subs", "subscribePattern", "pat/+/x", "allow")
    ctrl(b, "addRoleACL", "subs", "subscribePattern", "mix/#", "deny", "10")
    ctrl(b, "addRoleACL", "subs", "subscribeLiteral", "mix/a", "allow")
    sam = login(b, "sam", "pw-sam")
    assert subscribe_codes(sam, "lit/#") == [DENIED], "no role yet: default subscribe deny"
    ctrl(b, "addClientRole", "sam", "subs")
    expect_kicked(sam)

    sam = login(b, "sam", "pw-sam")
    sam4 = login(b, "sam", "pw-sam", version=4)
    # Literal ACLs match the filter byte for byte; pattern ACLs cover narrower filters;
    # within a role a literal match wins over a higher-priority pattern (§8.2/8.3).
    expected = {"lit/#": 1, "lit/a": DENIED, "pat/a/x": 1, "pat/+/x": 1, "pat/#": DENIED,
                "pat/a/y": DENIED, "mix/a": 1, "mix/b": DENIED, "free/x": DENIED}
    for pid, (topic, code) in enumerate(expected.items(), 1):
        assert subscribe_codes(sam, topic, packet_id=pid) == [code], topic
    assert subscribe_codes(sam, "lit/#", "lit/a", "pat/z/x", packet_id=20) == [1, DENIED, 1]
    assert subscribe_codes(sam4, "lit/a", "lit/#") == [0x80, 1], "3.1.1 failure code is 0x80"

    # A higher-priority pattern deny for one filter; removing it restores the allow.
    ctrl(b, "addRoleACL", "subs", "subscribePattern", "pat/a/x", "deny", "5")
    expect_kicked(sam)
    expect_kicked(sam4)
    sam = login(b, "sam", "pw-sam")
    assert subscribe_codes(sam, "pat/a/x", "pat/b/x") == [DENIED, 1]
    ctrl(b, "removeRoleACL", "subs", "subscribePattern", "pat/a/x")
    expect_kicked(sam)
    sam = login(b, "sam", "pw-sam")
    assert subscribe_codes(sam, "pat/a/x") == [1]

    # Debian 2.0.11's tool: success, no effect (both brokers, spec §6.1/§15).
    r = ctrl(b, "setDefaultACLAccess", "subscribe", "allow")
    assert r.stdout == ""
    assert "subscribe            : deny" in ctrl(b, "getDefaultACLAccess").stdout
    assert subscribe_codes(sam, "free/x") == [DENIED]

    # The raw API with a boolean `allow` changes it; connected clients are not kicked.
    admin.ok("setDefaultACLAccess", acls=[{"acltype": "subscribe", "allow": True}])
    expect_not_kicked(sam)
    assert "subscribe            : allow" in ctrl(b, "getDefaultACLAccess").stdout
    assert subscribe_codes(sam, "free/x", "pat/#", "mix/b",
                           "$CONTROL/dynamic-security/v1/response", "$CONTROL/#") \
        == [1, 1, DENIED, DENIED, DENIED], \
        "no match -> default allow; a role's deny still wins; default never grants $CONTROL"

    # publishClientSend default allow: any topic but $CONTROL (and $SYS).
    admin.ok("setDefaultACLAccess", acls=[{"acltype": "publishClientSend", "allow": True}])
    assert publish_rc(sam, "nosub/x", packet_id=1) == NO_SUBSCRIBERS
    assert publish_rc(sam, "$CONTROL/dynamic-security/v1", b'{"commands":[]}',
                      packet_id=2) == DENIED
    assert publish_rc(sam, "$CONTROL/other", packet_id=3) == DENIED

    # publishClientReceive default deny: sam's own publish on free/x is not delivered.
    admin.ok("setDefaultACLAccess", acls=[{"acltype": "publishClientReceive", "allow": False}])
    assert publish_rc(sam, "free/x", b"hidden", packet_id=4) != DENIED
    sam.expect_nothing(0.5)
    admin.ok("setDefaultACLAccess", acls=[{"acltype": "publishClientReceive", "allow": True}])
    sam.publish("free/x", b"shown")
    assert sam.expect("PUBLISH")["payload"] == b"shown"

    # unsubscribe default deny -> UNSUBACK 0x87; allow again -> 0x00.
    admin.ok("setDefaultACLAccess", acls=[{"acltype": "unsubscribe", "allow": False}])
    assert sam.unsubscribe(30, ["free/x"])["reason_codes"] == [DENIED]
    admin.ok("setDefaultACLAccess", acls=[{"acltype": "unsubscribe", "allow": True}])
    assert sam.unsubscribe(31, ["free/x"])["reason_codes"] == [0]
    assert admin.ok("getDefaultACLAccess") == {"acls": [
        {"acltype": "publishClientSend", "allow": True},
        {"acltype": "publishClientReceive", "allow": True},
        {"acltype": "subscribe", "allow": True},
        {"acltype": "unsubscribe", "allow": True}]}


def test_ctrl_anonymous_group(start_broker, broker_kind):
    """With allow_anonymous true, username-less clients get the anonymous group's roles
    (spec §8.2): setAnonymousGroup kicks every anonymous connection and no named one;
    changes to the group's roles kick anonymous clients; named clients never get the
    anonymous group's rights."""
    b = start_dynsec(start_broker, broker_kind, anonymous=True)
    ctrl(b, "createClient", "named", "-p", "pw-named")
    anon = login(b)
    anon4 = login(b, version=4)
    named = login(b, "named", "pw-named")
    assert publish_rc(anon, "t/a") == DENIED, "no anonymous group: default send deny"

    ctrl(b, "createGroup", "anon")
    ctrl(b, "createRole", "anonrole")
    ctrl(b, "addRoleACL", "anonrole", "publishClientSend", "t/#", "allow")
    ctrl(b, "addGroupRole", "anon", "anonrole")
    expect_not_kicked(anon)  # not the anonymous group yet
    assert ctrl(b, "getAnonymousGroup").stdout.strip() == ""

    ctrl(b, "setAnonymousGroup", "anon")
    expect_kicked(anon)
    expect_kicked(anon4)
    expect_not_kicked(named)
    assert ctrl(b, "getAnonymousGroup").stdout.strip() == "anon"
    anon = login(b)
    assert publish_rc(anon, "t/a") == NO_SUBSCRIBERS
    assert publish_rc(anon, "x/y", packet_id=2) == DENIED
    assert publish_rc(named, "t/a") == DENIED, "the anonymous group is not for named clients"

    # A change to a role of the anonymous group kicks anonymous clients only.
    ctrl(b, "addRoleACL", "anonrole", "publishClientSend", "t/b", "deny", "5")
    expect_kicked(anon)
    expect_not_kicked(named)
    anon = login(b)
    assert publish_rc(anon, "t/b") == DENIED
    assert publish_rc(anon, "t/a", packet_id=2) == NO_SUBSCRIBERS

    ctrl(b, "removeGroupRole", "anon", "anonrole")
    expect_kicked(anon)
    anon = login(b)
    assert publish_rc(anon, "t/a") == DENIED
    assert ctrl_error(b, "setAnonymousGroup", "nope") == "Group not found"
    assert ctrl(b, "getAnonymousGroup").stdout.strip() == "anon"


@pytest.mark.parametrize("version", [5, 4])
def test_kicked_client_will_is_not_published(start_broker, broker_kind, version):
    """A kicked client (setClientPassword for its username) is disconnected — v5 with
    DISCONNECT 0x98, 3.1.1 by a plain close — and its will is NOT published (spec §10),
    while the same user's will after an abrupt socket close is."""
    b = start_dynsec(start_broker, broker_kind)
    for user in ("victim", "watcher"):
        ctrl(b, "createClient", user, "-p", f"pw-{user}")
    ctrl(b, "createRole", "will-send")
    ctrl(b, "addRoleACL", "will-send", "publishClientSend", "will/#", "allow")
    ctrl(b, "addClientRole", "victim", "will-send")
    ctrl(b, "createRole", "will-watch")
    ctrl(b, "addRoleACL", "will-watch", "subscribePattern", "will/#", "allow")
    ctrl(b, "addClientRole", "watcher", "will-watch")
    watcher = login(b, "watcher", "pw-watcher")
    assert subscribe_codes(watcher, "will/#") == [1]

    victim = login(b, "victim", "pw-victim", version=version,
                   will={"topic": "will/kicked", "payload": b"should not appear", "qos": 1})
    ctrl(b, "setClientPassword", "victim", "pw-victim2")
    expect_kicked(victim)
    expect_not_kicked(watcher)

    # Control: an abrupt close publishes the will (so the watcher would have seen one).
    victim = login(b, "victim", "pw-victim2", version=version,
                   will={"topic": "will/abrupt", "payload": b"gone", "qos": 1})
    victim.close()
    p = watcher.expect("PUBLISH")
    assert (p["topic"], p["payload"]) == ("will/abrupt", b"gone"), \
        "the kicked client's will must not have been published"


# Who a command kicks (spec §10 table, behaviour-observations.json section "kick"):
# (command fields, does it kick the connected user "v"). Run in this order on one broker;
# "v" is in group "g" (addGroupClient), which holds role "gr" (addGroupRole), and holds
# role "r" itself (addClientRole).
KICKS = [
    ({"command": "createClient", "username": "other", "password": "pw-other"}, False),
    ({"command": "createGroup", "groupname": "g2"}, False),
    ({"command": "createRole", "rolename": "r2"}, False),
    ({"command": "setDefaultACLAccess",
      "acls": [{"acltype": "publishClientSend", "allow": True}]}, False),
    ({"command": "getClient", "username": "v"}, False),
    ({"command": "listClients", "verbose": True}, False),
    ({"command": "enableClient", "username": "v"}, False),
    ({"command": "addRoleACL", "rolename": "r2", "acltype": "publishClientSend",
      "topic": "x/#", "allow": True}, False),
    ({"command": "disableClient", "username": "other"}, False),
    ({"command": "modifyClient", "username": "v", "textname": "V"}, True),
    ({"command": "addClientRole", "username": "v", "rolename": "r2"}, True),
    ({"command": "removeClientRole", "username": "v", "rolename": "r2"}, True),
    ({"command": "setClientId", "username": "v"}, True),  # (clears: no binding to set)
    ({"command": "setClientPassword", "username": "v", "password": "pw-v"}, True),
    ({"command": "addGroupClient", "groupname": "g", "username": "v"}, True),  # error
    ({"command": "removeGroupClient", "groupname": "g2", "username": "v"}, True),
    ({"command": "modifyGroup", "groupname": "g", "textname": "G"}, True),
    ({"command": "addGroupRole", "groupname": "g", "rolename": "r2"}, True),
    ({"command": "removeGroupRole", "groupname": "g", "rolename": "r2"}, True),
    ({"command": "addRoleACL", "rolename": "gr", "acltype": "subscribePattern",
      "topic": "y/#", "allow": True}, True),
    ({"command": "removeRoleACL", "rolename": "gr", "acltype": "subscribePattern",
      "topic": "y/#"}, True),
    ({"command": "addRoleACL", "rolename": "r", "acltype": "publishClientReceive",
      "topic": "z/#", "allow": True}, True),
    ({"command": "addGroupClient", "groupname": "g2", "username": "v"}, True),
    ({"command": "deleteGroup", "groupname": "g2"}, True),
    ({"command": "deleteRole", "rolename": "r"}, True),
    ({"command": "disableClient", "username": "v"}, True),
]


def test_which_commands_kick(start_broker, broker_kind):
    """Every command of the KICKS table, sent by an admin while "v" is connected twice
    (MQTT v5 and 3.1.1): the commands that change v's rights kick both sessions (also
    addGroupClient failing with "Client is already in this group", as 2.0.11 does), the
    others kick nobody; a bystander is never kicked."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    admin.ok("createClient", username="v", password="pw-v")
    admin.ok("createClient", username="bystander", password="pw-b")
    admin.ok("createRole", rolename="r")
    admin.ok("createRole", rolename="gr")
    admin.ok("addClientRole", username="v", rolename="r")
    admin.ok("createGroup", groupname="g")
    admin.ok("addGroupRole", groupname="g", rolename="gr")
    admin.ok("addGroupClient", groupname="g", username="v")
    bystander = login(b, "bystander", "pw-b")
    for command, kicks in KICKS:
        v5 = login(b, "v", "pw-v")
        v4 = login(b, "v", "pw-v", version=4)
        (entry,) = admin.request(command)
        expect_error = command["command"] == "addGroupClient" and command["groupname"] == "g"
        assert ("error" in entry) == expect_error, (command, entry)
        for session in (v5, v4):
            if kicks:
                expect_kicked(session)
            else:
                expect_not_kicked(session, settle=0.2)
                session.disconnect()
    expect_not_kicked(bystander)


def test_mosquitto_ctrl_outputs_match_the_capture(start_broker, broker_kind):
    """Replays every `mosquitto_ctrl dynsec ...` line of the golden capture
    (mosquitto_ctrl-2.0.11-mapping.json, recorded against Debian Mosquitto 2.0.11 from a
    fresh `dynsec init` file) in order: the tool's stdout, stderr and exit code must be
    what it printed then — so the broker's responses are exactly what the tool expects.
    The tool's own "running without encryption" warning is not part of the capture."""
    mapping = json.loads((GOLDEN / "mosquitto_ctrl-2.0.11-mapping.json").read_text())
    b = start_dynsec(start_broker, broker_kind)
    tool = require_tool("mosquitto_ctrl")
    for case in mapping["results"]:
        argv = case["argv"]
        assert argv[:3] == ["mosquitto_ctrl", "<connection options>", "dynsec"]
        r = subprocess.run([tool, "-h", b.host, "-p", str(b.port), "-u", "admin", "-P",
                            ADMIN_PASSWORD, *argv[2:]], capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        stderr = r.stderr.replace(CTRL_WARNING, "")
        assert (r.stdout, stderr, r.returncode) == \
            (case["stdout"], case["stderr"], case["exit_code"]), " ".join(argv[2:])


# --------------------------------------------------------------------------
# 1b. Control transport and further enforcement details
# --------------------------------------------------------------------------


# subscribePattern / unsubscribePattern: does the ACL cover the requested filter?
# (spec §8.3, Mosquitto 2.0.11's algorithm: strip a trailing `/#` or a lone `#` from both,
# then compare level by level, `+` in the ACL matching any level, even an empty one).
# ACL -> {filter: covered}. The last rows are the edge of that algorithm: stripping `#`
# leaves one empty level, which an ACL `+/#` or `/#` covers.
COVER = {
    "pat/+/x": {"pat/a/x": True, "pat/+/x": True, "pat/#": False, "pat/a/y": False},
    "deep/#": {"deep": True, "deep/+": True, "deep/a/b/#": True, "#": False},
    "#": {"$SYS/#": True, "a/b": True, "#": True},
    "a/+": {"a/b": True, "a/+": True, "a/#": False, "a": False, "a/b/c": False},
    "+/#": {"$SYS/#": True, "a": True, "a/b/#": True, "#": True},
    "/#": {"/x": True, "/#": True, "x": False, "#": True},
}


def test_pattern_acls_cover_filters_as_mosquitto_does(start_broker, broker_kind):
    """Each COVER row as a subscribePattern allow (SUBACK) and as an unsubscribePattern
    deny (UNSUBACK) in a role of its own, default subscribe deny / unsubscribe allow."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    wrong = []
    for i, (acl, filters) in enumerate(COVER.items()):
        admin.ok("createRole", rolename=f"cover{i}", acls=[
            {"acltype": "subscribePattern", "topic": acl, "allow": True},
            {"acltype": "unsubscribePattern", "topic": acl, "allow": False}])
        admin.ok("createClient", username=f"cover{i}", password="pw",
                 roles=[{"rolename": f"cover{i}"}])
        c = login(b, f"cover{i}", "pw")
        no_retained = {"qos": 1, "retain_handling": 2}  # (no retained $SYS messages)
        suback = c.subscribe(1, [(f, no_retained) for f in filters])["reason_codes"]
        unsuback = c.unsubscribe(2, list(filters))["reason_codes"]
        for (f, covered), sub, unsub in zip(filters.items(), suback, unsuback):
            if (sub == 1) != covered or (unsub == DENIED) != covered:
                wrong.append(f"ACL {acl!r} filter {f!r}: covered={covered}, "
                             f"SUBACK {sub:#x}, UNSUBACK {unsub:#x}")
        c.close()
    assert not wrong, "\n".join(wrong)


def test_control_topic_transport(start_broker, broker_kind):
    """Spec §3: requests at QoS 0/1/2 are executed, acknowledged with reason 0 and
    answered once at QoS 0; a retained request is not stored and requests are never
    routed to subscribers; a sender without publishClientSend gets 0x87 and nothing is
    executed; a requester without publishClientReceive executes commands but sees no
    response, which other admin sessions do get; an MQTT 3.1.1 admin works."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    # A second admin user that also watches the request topic.
    admin.ok("createClient", username="watch", password="pw-watch",
             roles=[{"rolename": "admin"}])
    watch = login(b, "watch", "pw-watch")
    assert subscribe_codes(watch, "$CONTROL/dynamic-security/#", qos=2) == [2]

    def request(i):
        return json.dumps({"commands": [{"command": "createGroup", "groupname": f"g{i}",
                                         "correlationData": f"q{i}"}]}).encode()

    def answer(i):
        return json.dumps({"responses": [{"command": "createGroup",
                                          "correlationData": f"q{i}"}]},
                          separators=(",", ":")).encode()

    c = admin.client
    c.publish(REQUEST_TOPIC, request(0), qos=0)
    c.publish(REQUEST_TOPIC, request(1), qos=1, packet_id=11)
    c.publish(REQUEST_TOPIC, request(2), qos=2, packet_id=12, retain=True)
    got, acks = [], {}
    while len(got) < 3 or len(acks) < 2:
        p = c.recv_packet(5)
        assert p is not None, f"got {got} {acks}"
        if p["type"] == "PUBLISH":
            assert (p["topic"], p["qos"], p["retain"]) == (
                "$CONTROL/dynamic-security/v1/response", 0, False)
            got.append(p["payload"])
        else:
            acks[p["type"]] = p["reason_code"]
    assert acks == {"PUBACK": 0, "PUBREC": 0}
    c.send(m.pubrel(12, version=5))
    c.expect("PUBCOMP")
    assert got == [answer(0), answer(1), answer(2)]
    # The watcher sees the three responses, never the requests.
    seen = [watch.expect("PUBLISH") for _ in range(3)]
    assert [(p["topic"], p["payload"]) for p in seen] == \
        [("$CONTROL/dynamic-security/v1/response", answer(i)) for i in range(3)]
    watch.expect_nothing(0.3)
    # Nothing retained on the request topic.
    late = login(b, "watch", "pw-watch", client_id="watch-late")
    assert subscribe_codes(late, REQUEST_TOPIC) == [1]
    late.expect_nothing(0.3)

    # Send-only admin: executes, sees no response; the watcher sees it.
    admin.ok("createRole", rolename="send-only", acls=[
        {"acltype": "publishClientSend", "topic": "$CONTROL/dynamic-security/#", "allow": True},
        {"acltype": "subscribePattern", "topic": "$CONTROL/dynamic-security/#", "allow": True}])
    admin.ok("createClient", username="blind", password="pw-blind",
             roles=[{"rolename": "send-only"}])
    for _ in range(2):  # the watcher's copies of the responses to those two commands
        watch.expect("PUBLISH")
    blind = login(b, "blind", "pw-blind")
    assert subscribe_codes(blind, "$CONTROL/dynamic-security/v1/response") == [1]
    blind.publish(REQUEST_TOPIC, request(3), qos=1, packet_id=1)
    blind.expect("PUBACK", reason_code=0)
    assert watch.expect("PUBLISH")["payload"] == answer(3)
    blind.expect_nothing(0.3)
    # No rights at all: 0x87 on v5, nothing executed, no response anywhere.
    admin.ok("createClient", username="nobody", password="pw-nobody")
    watch.expect("PUBLISH")
    nobody = login(b, "nobody", "pw-nobody")
    nobody.publish(REQUEST_TOPIC, request(4), qos=1, packet_id=1)
    nobody.expect("PUBACK", reason_code=DENIED)
    watch.expect_nothing(0.3)
    assert admin.error("getGroup", groupname="g4") == "Group not found"
    assert admin.ok("listGroups")["groups"] == ["g0", "g1", "g2", "g3"]

    # An MQTT 3.1.1 admin session.
    admin4 = Admin(b, version=4)
    assert admin4.ok("listGroups")["totalCount"] == 4


def test_retained_shared_and_unsubscribe_acls(start_broker, broker_kind):
    """Further §8.1 checks: a retained message is only delivered on subscribe when
    publishClientReceive allows it; a shared subscription is checked with its full
    `$share/...` filter; unsubscribeLiteral/unsubscribePattern decide UNSUBACK codes
    (default: allow)."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    admin.ok("createRole", rolename="w", acls=[
        {"acltype": "publishClientSend", "topic": "r/#", "allow": True},
        {"acltype": "publishClientSend", "topic": "will/ok", "allow": True}])
    admin.ok("createRole", rolename="rd", acls=[
        {"acltype": "subscribePattern", "topic": "r/#", "allow": True},
        {"acltype": "subscribePattern", "topic": "will/#", "allow": True},
        {"acltype": "publishClientReceive", "topic": "r/secret", "allow": False},
        {"acltype": "subscribePattern", "topic": "$share/grp/s/#", "allow": True},
        {"acltype": "subscribePattern", "topic": "s/#", "allow": True},
        {"acltype": "unsubscribeLiteral", "topic": "u/lit", "allow": False},
        {"acltype": "unsubscribePattern", "topic": "u/pat/#", "allow": False}])
    admin.ok("createClient", username="w", password="pw-w", roles=[{"rolename": "w"}])
    admin.ok("createClient", username="rd", password="pw-rd", roles=[{"rolename": "rd"}])
    w = login(b, "w", "pw-w")
    for i, topic in enumerate(["r/public", "r/secret"], 1):
        w.publish(topic, topic.encode(), qos=1, retain=True, packet_id=i)
        assert w.expect("PUBACK")["reason_code"] in (OK, NO_SUBSCRIBERS)
    rd = login(b, "rd", "pw-rd")
    assert subscribe_codes(rd, "r/#") == [1]
    p = rd.expect("PUBLISH")
    assert (p["topic"], p["retain"]) == ("r/public", True)
    rd.send(m.puback(p["packet_id"], version=5))
    rd.expect_nothing(0.4)

    # Shared subscriptions are checked with the whole `$share/<group>/<filter>`.
    # (s/# allows s/x but does not cover $share/other/s/x.)
    assert subscribe_codes(rd, "$share/grp/s/x", "$share/other/s/x", "s/x", packet_id=3) \
        == [1, DENIED, 1]

    # Unsubscribe ACLs.
    assert rd.unsubscribe(4, ["u/lit", "u/lit/x", "u/pat/a", "u/pat", "r/#"])["reason_codes"] \
        == [DENIED, 0x11, DENIED, DENIED, 0]


def test_kicked_persistent_session_survives(start_broker, broker_kind):
    """Spec §10: a kick is handled as any other disconnect — a persistent session (v5
    session expiry) is kept; the client reconnects to it and gets what was queued for it
    while it was away, under its new rights."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    admin.ok("createRole", rolename="sub", acls=[
        {"acltype": "subscribePattern", "topic": "p/#", "allow": True}])
    admin.ok("createRole", rolename="pub", acls=[
        {"acltype": "publishClientSend", "topic": "p/#", "allow": True}])
    # addClientRole, not createClient's roles list: Mosquitto 2.0.11 only kicks holders
    # it has a back-reference for (deviation consistent-role-links).
    admin.ok("createClient", username="s", password="pw-s")
    admin.ok("addClientRole", username="s", rolename="sub")
    admin.ok("createClient", username="p", password="pw-p", roles=[{"rolename": "pub"}])
    props = {"session_expiry_interval": 600}
    s = m.RawClient(b.host, b.port, 5, label="s")
    assert s.connect("s-persist", username="s", password="pw-s", clean=False,
                     properties=props)["reason_code"] == 0
    assert subscribe_codes(s, "p/#") == [1]
    admin.ok("addRoleACL", rolename="sub", acltype="publishClientReceive", topic="p/hidden",
             allow=False)
    expect_kicked(s)
    p = login(b, "p", "pw-p")
    for i, topic in enumerate(["p/hidden", "p/queued"], 1):
        assert publish_rc(p, topic, topic.encode(), packet_id=i) in (OK, NO_SUBSCRIBERS)
    s = m.RawClient(b.host, b.port, 5, label="s")
    ack = s.connect("s-persist", username="s", password="pw-s", clean=False, properties=props)
    assert ack["reason_code"] == 0 and ack["session_present"]
    got = s.expect("PUBLISH")
    assert got["topic"] == "p/queued"
    s.send(m.puback(got["packet_id"], version=5))
    s.expect_nothing(0.4)


@pytest.mark.parametrize("version", [5, 4])
def test_kick_drops_subscriptions_no_longer_allowed(start_broker, broker_kind, version):
    """A durable session subscribed to p/# and q/# loses the right to subscribe to p/#
    (removeRoleACL) while connected: it is kicked, and the subscriptions of that session
    are re-checked against the new ACLs — p/# is gone (nothing delivered, the publisher
    sees "no matching subscribers", UNSUBSCRIBE says "no subscription existed"), q/#
    stays. Observed on Debian's Mosquitto 2.0.11 (its CVE-2021-34434 fix, spec §18
    listed it as unverified); otherwise a client keeps data whose subscribe right was
    revoked just by reconnecting with clean start false."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    admin.ok("createRole", rolename="sub", acls=[
        {"acltype": "subscribePattern", "topic": "p/#", "allow": True},
        {"acltype": "subscribePattern", "topic": "q/#", "allow": True}])
    admin.ok("createClient", username="s", password="pw-s")
    admin.ok("addClientRole", username="s", rolename="sub")
    admin.ok("createClient", username="p", password="pw-p", roles=[{"rolename": "sub"}])
    admin.ok("createRole", rolename="pub", acls=[
        {"acltype": "publishClientSend", "topic": "#", "allow": True}])
    admin.ok("addClientRole", username="p", rolename="pub")
    props = {"session_expiry_interval": 600} if version == 5 else None

    def connect():
        c = m.RawClient(b.host, b.port, version, label="s")
        ack = c.connect("s-durable", username="s", password="pw-s", clean=False,
                        properties=props)
        assert ack["reason_code"] == 0
        return c, ack["session_present"]

    s, _ = connect()
    assert subscribe_codes(s, "p/#", "q/#") == [1, 1]
    admin.ok("removeRoleACL", rolename="sub", acltype="subscribePattern", topic="p/#")
    expect_kicked(s)
    s, present = connect()
    assert present
    p = login(b, "p", "pw-p")
    if version == 5:
        assert publish_rc(p, "p/x", packet_id=1) == NO_SUBSCRIBERS
    else:
        publish_rc(p, "p/x", packet_id=1)
    publish_rc(p, "q/x", packet_id=2)
    got = s.expect("PUBLISH")
    assert got["topic"] == "q/x", "the p/# subscription must have been dropped"
    s.send(m.puback(got["packet_id"], version=version))
    s.expect_nothing(0.4)
    if version == 5:
        assert s.unsubscribe(3, ["p/#", "q/#"])["reason_codes"] == [0x11, 0]


def test_will_is_checked_against_publishclientsend(start_broker, broker_kind):
    """Spec §8.1: a will is checked (publishClientSend) when it is about to be
    published: of two clients closing abruptly, only the one whose will topic it may
    publish to has its will delivered."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    admin.ok("createRole", rolename="w", acls=[
        {"acltype": "publishClientSend", "topic": "will/ok", "allow": True}])
    admin.ok("createRole", rolename="rd", acls=[
        {"acltype": "subscribePattern", "topic": "will/#", "allow": True}])
    admin.ok("createClient", username="w", password="pw-w", roles=[{"rolename": "w"}])
    admin.ok("createClient", username="rd", password="pw-rd", roles=[{"rolename": "rd"}])
    rd = login(b, "rd", "pw-rd")
    assert subscribe_codes(rd, "will/#") == [1]
    w = login(b, "w", "pw-w")
    assert publish_rc(w, "will/denied") == DENIED, "w may not publish there itself"
    w2 = login(b, "w", "pw-w", will={"topic": "will/denied", "payload": b"bye"})
    w3 = login(b, "w", "pw-w", will={"topic": "will/ok", "payload": b"bye"})
    w2.close()
    w3.close()
    p = rd.expect("PUBLISH")
    assert p["topic"] == "will/ok", \
        "the will to a topic publishClientSend denies must not be published"
    rd.expect_nothing(0.4)


# --------------------------------------------------------------------------
# 1c. Deliberate differences (shards/src/dynsec/deviations.rs): Culex is held to its
# decision, Mosquitto 2.0.11 to what it does, so a Mosquitto upgrade or a Culex
# regression shows up here.
# --------------------------------------------------------------------------


def per_kind(kind: str, culex, mosquitto):
    return culex if kind == "culex" else mosquitto


def test_admin_changing_its_own_rights_still_gets_the_response(start_broker, broker_kind):
    """Deviation `kick-after-response`: an admin whose own rights change is kicked.
    Mosquitto 2.0.11 kicks while the command runs, so that admin never receives the
    response; Culex publishes the response first (as 2.1). Another admin session sees
    the response on both."""
    b = start_dynsec(start_broker, broker_kind)
    ctrl(b, "createClient", "admin2", "-p", "pw-admin2")
    ctrl(b, "addClientRole", "admin2", "admin")
    ctrl(b, "createRole", "extra")
    admin = Admin(b)
    other = Admin(b, "admin2", "pw-admin2")
    request = (b'{"commands":[{"command":"addClientRole","username":"admin",'
               b'"rolename":"extra","correlationData":"self"}]}')
    expected = b'{"responses":[{"command":"addClientRole","correlationData":"self"}]}'
    admin.client.publish("$CONTROL/dynamic-security/v1", request, qos=1, packet_id=7)
    state, disc, packets = admin.client.wait_closed(5)
    assert state == "closed" and disc is not None and disc["reason_code"] == 0x98, \
        f"admin must be kicked with 0x98: {state} {[m.show(p) for p in packets]}"
    responses = [p["payload"] for p in packets if p["type"] == "PUBLISH"]
    assert responses == per_kind(broker_kind, culex=[expected], mosquitto=[]), \
        [m.show(p) for p in packets]
    assert packets[-1]["type"] == "DISCONNECT", "nothing after the DISCONNECT"
    got = other.client.expect("PUBLISH")
    assert got["payload"] == expected, "the other admin session sees the response"
    expect_not_kicked(other.client)


def test_role_from_createclient_roles_list_kicks_on_change(start_broker, broker_kind):
    """Deviation `consistent-role-links`: a role attached through createClient's
    `roles` list. Mosquitto 2.0.11 keeps no back-reference, so addRoleACL on that role
    does not kick the holder; Culex kicks every holder however the role was attached.
    The role's rights apply on both."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    admin.ok("createRole", rolename="linked")
    admin.ok("createClient", username="holder", password="pw-holder",
             roles=[{"rolename": "linked"}])
    holder = login(b, "holder", "pw-holder")
    assert publish_rc(holder, "v/x") == DENIED
    admin.ok("addRoleACL", rolename="linked", acltype="publishClientSend", topic="v/#",
             allow=True)
    if broker_kind == "culex":
        expect_kicked(holder)
        holder = login(b, "holder", "pw-holder")
    else:
        expect_not_kicked(holder)
        holder.disconnect()
        holder = login(b, "holder", "pw-holder")
    assert publish_rc(holder, "v/x", packet_id=2) == NO_SUBSCRIBERS


def test_modifyrole_kicks_the_holders(start_broker, broker_kind):
    """Deviation `modify-role-kicks`: modifyRole with an `acls` array kicks the role's
    holders on Culex (2.1), nobody on Mosquitto 2.0.11; the new ACLs apply on both."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    admin.ok("createClient", username="holder", password="pw-holder")
    admin.ok("createRole", rolename="r")
    admin.ok("addClientRole", username="holder", rolename="r")
    holder = login(b, "holder", "pw-holder")
    admin.ok("modifyRole", rolename="r",
             acls=[{"acltype": "publishClientSend", "topic": "mod/#", "allow": True}])
    if broker_kind == "culex":
        expect_kicked(holder)
    else:
        expect_not_kicked(holder)
        holder.disconnect()
    holder = login(b, "holder", "pw-holder")
    assert publish_rc(holder, "mod/x") == NO_SUBSCRIBERS


def test_pattern_substitution(start_broker, broker_kind):
    """Deviation `pattern-substitution`: a `%u` / `%c` level stands for the username /
    client id on Culex (2.1); Mosquitto 2.0.11 matches `%u` literally."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    admin.ok("createRole", rolename="own", acls=[
        {"acltype": "publishClientSend", "topic": "u/%u/#", "allow": True},
        {"acltype": "publishClientSend", "topic": "c/%c/#", "allow": True}])
    admin.ok("createClient", username="alice", password="pw-alice",
             roles=[{"rolename": "own"}])
    alice = login(b, "alice", "pw-alice", client_id="cid-a")
    codes = [publish_rc(alice, t, packet_id=i) for i, t in enumerate(
        ["u/alice/x", "u/%u/x", "u/bob/x", "c/cid-a/x", "c/%c/x"], 1)]
    assert codes == per_kind(
        broker_kind,
        culex=[NO_SUBSCRIBERS, DENIED, DENIED, NO_SUBSCRIBERS, DENIED],
        mosquitto=[DENIED, NO_SUBSCRIBERS, DENIED, DENIED, NO_SUBSCRIBERS])


def test_failed_modifyclient_changes_nothing(start_broker, broker_kind):
    """Deviation `modify-validates-first`: modifyClient with a text change and an
    unknown role fails with "Role not found" on both. Mosquitto 2.0.11 has already
    applied the textname and kicks the user anyway; Culex changes nothing and kicks
    nobody."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    admin.ok("createClient", username="dev1", password="pw-dev1", textname="Device One")
    dev1 = login(b, "dev1", "pw-dev1")
    assert admin.error("modifyClient", username="dev1", textname="CHANGED",
                       roles=[{"rolename": "nope"}]) == "Role not found"
    client = admin.ok("getClient", username="dev1")["client"]
    assert client["textname"] == per_kind(broker_kind, culex="Device One",
                                          mosquitto="CHANGED")
    if broker_kind == "culex":
        expect_not_kicked(dev1)
    else:
        expect_kicked(dev1)


def test_modifygroup_kicks_removed_members(start_broker, broker_kind):
    """Deviation `modify-group-kicks-old-members`: modifyGroup replacing the member list
    kicks the members after the change on both; the removed member is kicked on Culex
    (2.0.15+) and not on Mosquitto 2.0.11."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    for user in ("m1", "m2"):
        admin.ok("createClient", username=user, password=f"pw-{user}")
    admin.ok("createGroup", groupname="g")
    admin.ok("addGroupClient", groupname="g", username="m1")
    admin.ok("addGroupClient", groupname="g", username="m2")
    m1, m2 = login(b, "m1", "pw-m1"), login(b, "m2", "pw-m2")
    admin.ok("modifyGroup", groupname="g", clients=[{"username": "m2"}])
    expect_kicked(m2)
    if broker_kind == "culex":
        expect_kicked(m1)
    else:
        expect_not_kicked(m1)
    assert admin.ok("getGroup", groupname="g")["group"]["clients"] == [{"username": "m2"}]


def test_deleting_the_anonymous_group_is_refused(start_broker, broker_kind):
    """Deviation `delete-anonymous-group-forbidden` (Culex only: Mosquitto 2.0.11
    accepts the command and crashes, spec §6.3)."""
    if broker_kind != "culex":
        pytest.skip("Mosquitto 2.0.11 crashes on this command (spec §6.3 defect)")
    b = start_dynsec(start_broker, broker_kind, anonymous=True)
    admin = Admin(b)
    admin.ok("createGroup", groupname="anon")
    admin.ok("setAnonymousGroup", groupname="anon")
    anon = login(b)
    assert admin.error("deleteGroup", groupname="anon") == \
        "Deleting the anonymous group is forbidden"
    assert admin.ok("getAnonymousGroup") == {"group": {"groupname": "anon"}}
    expect_not_kicked(anon)


# --------------------------------------------------------------------------
# 2. Crash safety of Culex's file writes
# --------------------------------------------------------------------------

CRASH_ITERATIONS = 10
CRASH_MAX_DELAY = 0.3
CRASH_WINDOW = 4  # requests in flight


def crash_request(n: int) -> list[dict]:
    """Request n: three modifying commands whose results are all visible in the file;
    correlationData counts commands (3n-2 .. 3n)."""
    return [
        {"command": "createRole", "rolename": f"r{n}", "textname": f"role {n}",
         "acls": [{"acltype": "publishClientSend", "topic": f"t/{n}/#", "allow": True}],
         "correlationData": str(3 * n - 2)},
        {"command": "createClient", "username": f"u{n}", "password": f"p{n}",
         "roles": [{"rolename": f"r{n}", "priority": n}], "correlationData": str(3 * n - 1)},
        {"command": "addRoleACL", "rolename": f"r{n}", "acltype": "subscribePattern",
         "topic": f"s/{n}/#", "allow": True, "priority": 3, "correlationData": str(3 * n)},
    ]


def applied_requests(text: str, context: str) -> set[int]:
    """The requests whose changes the file holds. Fails on a partially applied command
    (a role without its textname or ACLs, a client without its password or role) or a
    partially applied request (Culex saves once per request: deviation
    `save-per-request`)."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise AssertionError(f"{context}: file is not JSON ({e}): {text[:200]!r}")
    roles = {r["rolename"]: r for r in doc.get("roles", [])}
    clients = {c["username"]: c for c in doc.get("clients", [])}
    found = set()
    names = {int(x[1:]) for x in list(roles) + list(clients)
             if x[:1] in "ru" and x[1:].isdigit()}
    for n in names:
        role, client = roles.get(f"r{n}"), clients.get(f"u{n}")
        parts = []
        if role is not None:
            assert role.get("textname") == f"role {n}", f"{context}: r{n} partial: {role}"
            send = [a for a in role["acls"] if a["acltype"] == "publishClientSend"]
            assert send == [{"acltype": "publishClientSend", "topic": f"t/{n}/#",
                             "priority": 0, "allow": True}], f"{context}: r{n} partial: {role}"
            sub = [a for a in role["acls"] if a["acltype"] == "subscribePattern"]
            parts += [True, bool(sub)]
            if sub:
                assert sub == [{"acltype": "subscribePattern", "topic": f"s/{n}/#",
                                "priority": 3, "allow": True}], f"{context}: r{n}: {role}"
        else:
            parts += [False, False]
        if client is not None:
            assert "encoded_password" in client or "password" in client, \
                f"{context}: u{n} without its password: {client}"
            assert client["roles"] == [{"rolename": f"r{n}", "priority": n}], \
                f"{context}: u{n} partial: {client}"
        parts.append(client is not None)
        assert all(parts) or not any(parts), \
            f"{context}: request {n} partially on disk (role, its 2nd ACL, client) = {parts}"
        if all(parts):
            found.add(n)
    return found


def stream_until_kill(b, admin: Admin, first: int, kill_at: float):
    """Sends requests first, first+1, ... (QoS 0, CRASH_WINDOW in flight) until
    `kill_at`, then SIGKILLs the broker. Returns (last request sent, requests whose
    response arrived — including responses already in the socket at the kill)."""
    sock = admin.client
    sent, acked = first - 1, set()

    def take(p):
        if p is not None and p["type"] == "PUBLISH":
            entries = json.loads(p["payload"])["responses"]
            assert all("error" not in e for e in entries), entries
            acked.add((int(entries[0]["correlationData"]) + 2) // 3)

    while time.monotonic() < kill_at:
        if sent - first + 1 - len(acked) < CRASH_WINDOW:
            sent += 1
            sock.publish(REQUEST_TOPIC, json.dumps({"commands": crash_request(sent)}))
        else:
            take(sock.recv_packet(max(0.0, min(0.05, kill_at - time.monotonic()))))
    b.kill()
    while True:  # what the broker sent before it died
        try:
            p = sock.recv_packet(2)
        except m.Closed:
            break
        if p is None:
            break
        take(p)
    sock.close()
    return sent, acked


def test_sigkill_during_changes_leaves_a_loadable_prefix(start_broker, broker_kind):
    """Culex only (its own file writes, deviation `save-per-request`: temp file, fsync,
    rename). A stream of modifying requests is cut by SIGKILL at a random moment, ten
    times. After each kill the file is JSON, mode 0600, loads (the broker restarts on it,
    `listClients` matches it, the newest acknowledged user logs in), and holds a prefix
    of the requests: every acknowledged one, none beyond the last sent, none partial.
    Seeded; set DYNSEC_CRASH_SEED to replay."""
    if broker_kind != "culex":
        pytest.skip("about Culex's own file writes")
    seed = int(os.environ.get("DYNSEC_CRASH_SEED") or random.randrange(2**32))
    print(f"DYNSEC_CRASH_SEED={seed}")
    rng = random.Random(seed)
    b = start_dynsec(start_broker, broker_kind, user_root=False)
    path = dynsec_path(b)
    on_disk: set[int] = set()
    for iteration in range(CRASH_ITERATIONS):
        context = f"seed {seed}, iteration {iteration}"
        delay = rng.uniform(0, CRASH_MAX_DELAY)
        admin = Admin(b)
        first = max(on_disk, default=0) + 1
        sent, acked = stream_until_kill(b, admin, first, time.monotonic() + delay)
        applied = applied_requests(path.read_text(), context)
        assert acked <= applied, f"{context}: acknowledged but lost: {sorted(acked - applied)}"
        assert applied == set(range(1, max(applied, default=0) + 1)), \
            f"{context}: not a prefix: {sorted(applied)}"
        assert max(applied, default=0) <= sent, f"{context}: more than was sent"
        assert applied >= on_disk, f"{context}: an earlier change disappeared"
        if applied:
            assert path.stat().st_mode & 0o077 == 0, f"{context}: file readable by others"
        on_disk = applied
        print(f"iteration {iteration}: delay {delay * 1000:.0f} ms, sent up to {sent}, "
              f"acknowledged {len(acked)}, on disk up to {max(on_disk, default=0)}")

        b.restart()
        admin = Admin(b)
        listed = admin.ok("listClients")
        assert listed["clients"] == sorted(["admin"] + [f"u{n}" for n in on_disk]), context
        if on_disk:
            n = max(on_disk)
            assert connack(b, f"u{n}", f"p{n}") == 0, f"{context}: u{n} cannot log in"
        admin.close()
    assert max(on_disk, default=0) > 0, f"seed {seed}: no request ever reached the disk"


# --------------------------------------------------------------------------
# 3. Bad input: the spec's error, nothing changed, the broker keeps serving
# --------------------------------------------------------------------------

# Golden captures (Debian Mosquitto 2.0.11, spec §4–§6, §14) whose request only fails:
# every response entry is an error and the broker did not rewrite its file. Replayed
# against BAD_INPUT_SETUP, which holds what they refer to (role-min with a/b, user1 in
# group field holding role sensors, grp-min holding readers, dev1), and compared byte
# for byte with the captured response. Left out: 196 (2.0.11 applies part of it —
# test_failed_modifyclient_changes_nothing) and the mixed success/error envelopes
# (007, 009, 017), whose success entries list the replay's own state.
GOLDEN_ERRORS = [
    1, 2, 3, 4, 5, 8, 10, 11, 12, 15, 23, 24, 31, 32, 33, 34, 35, 36, 37, 42, 43, 56, 58,
    59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 72, 73, 74, 75, 76, 77, 78, 84, 85, 91, 92, 93,
    94, 95, 96, 97, 98, 99, 100, 104, 105, 106, 107, 108, 111, 112, 115, 116, 124, 125, 126,
    127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 139, 140, 141, 150, 151, 152, 153,
    157, 158, 162, 163, 164, 167, 168, 169, 170, 171, 174, 175, 179, 180, 181, 182, 187,
    188, 189, 194, 195, 198, 204, 205, 211, 212, 216, 217, 220, 221, 225, 226, 232, 233,
    234, 236,
]

BAD_INPUT_SETUP = [
    {"command": "createRole", "rolename": "role-min",
     "acls": [{"acltype": "publishClientSend", "topic": "a/b", "allow": False}]},
    {"command": "createRole", "rolename": "sensors"},
    {"command": "createRole", "rolename": "readers"},
    {"command": "createRole", "rolename": "witness",
     "acls": [{"acltype": "publishClientSend", "topic": "w/#", "allow": True},
              {"acltype": "subscribePattern", "topic": "w/#", "allow": True}]},
    {"command": "createGroup", "groupname": "grp-min"},
    {"command": "addGroupRole", "groupname": "grp-min", "rolename": "readers"},
    {"command": "createGroup", "groupname": "field"},
    {"command": "createClient", "username": "user1", "password": "pw-user1"},
    {"command": "addClientRole", "username": "user1", "rolename": "sensors"},
    {"command": "addGroupClient", "groupname": "field", "username": "user1"},
    {"command": "createClient", "username": "dev1", "textname": "Device One"},
    {"command": "createClient", "username": "witness", "password": "pw-witness"},
    {"command": "addClientRole", "username": "witness", "rolename": "witness"},
]

LONG = "n" * 65_537  # one byte over the name limit (spec §5, §14)


def bad_requests():
    """(payload, expected response entries) beyond the golden captures, from the spec."""
    def one(cmd, error, **fields):
        entry = {"command": cmd, "error": error}
        return json.dumps({"commands": [{"command": cmd, **fields}]}).encode(), [entry]
    deep = b'{"commands":[' + b"[" * 1001 + b"]" * 1001 + b"]}"
    return [
        one("createGroup", "Group name not valid UTF-8", groupname=LONG),
        one("createRole", "Role name not valid UTF-8", rolename=LONG),
        one("createClient", "Client ID not valid UTF-8", username="u-long", clientid=LONG),
        one("setClientId", "Client ID not valid UTF-8", username="user1", clientid=LONG),
        one("addGroupClient", "Username not valid UTF-8", groupname="field", username=LONG),
        one("listGroupClients", "Unknown command", groupname="field"),
        one("setClientPassword", "Invalid/missing password", username="user1", password=7),
        one("addRoleACL", "Invalid ACL topic", rolename="role-min",
            acltype="subscribePattern", topic="a/" * 201 + "b"),
        (deep, [{"command": "Unknown command", "error": "Payload not valid JSON"}]),
        (b"\xff\xfe{}", [{"command": "Unknown command", "error": "Payload not valid JSON"}]),
    ]


def bad_command(i: int) -> tuple[dict, str]:
    """The i-th failing command of a long series, and its error (golden texts)."""
    kind = i % 4
    cd = f"b{i}"
    if kind == 0:
        return {"command": "createClient", "username": i, "correlationData": cd}, \
            "Invalid/missing username"
    if kind == 1:
        return {"command": f"noSuchCommand{i}", "correlationData": cd}, "Unknown command"
    if kind == 2:
        return {"command": "addRoleACL", "rolename": f"nope{i}", "acltype": "publishClientSend",
                "topic": "x", "allow": True, "correlationData": cd}, "Role not found"
    return {"command": "createRole", "rolename": "sensors", "correlationData": cd}, \
        "Role already exists"


def expected_entry(i: int) -> dict:
    cmd, error = bad_command(i)
    return {"command": cmd["command"], "error": error, "correlationData": cmd["correlationData"]}


def witness_round_trip(w, n: int) -> None:
    w.publish("w/echo", f"echo {n}".encode(), qos=1, packet_id=n % 60000 + 1)
    got = {}
    for _ in range(2):  # the copy and the PUBACK, in either order
        p = w.recv_packet(10)
        assert p is not None, f"witness round trip {n} timed out"
        got[p["type"]] = p
        if p["type"] == "PUBLISH" and p["qos"]:
            w.send(m.puback(p["packet_id"], version=5))
    assert set(got) == {"PUBLISH", "PUBACK"} and got["PUBLISH"]["payload"] == f"echo {n}".encode()


def test_bad_control_input_changes_nothing(start_broker, broker_kind):
    """Malformed JSON, wrong types, missing fields, oversize names, unknown commands,
    a payload of many failing commands and a flood of 500 quick requests: each answered
    with the spec's (golden) error, the state and the file unchanged, and a witness
    client served during and after the flood."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    for entry in admin.request(*BAD_INPUT_SETUP):
        assert "error" not in entry, entry
    witness = login(b, "witness", "pw-witness")
    assert subscribe_codes(witness, "w/#") == [1]
    path = dynsec_path(b)
    before, stamp = admin.snapshot(), file_stamp(path)

    for n in GOLDEN_ERRORS:
        case = golden(n)
        got = admin.send_raw(golden_payload(case))
        assert got.decode() == case["response_raw"], f"golden {n} ({case['name']})"

    for payload, entries in bad_requests():
        assert json.loads(admin.send_raw(payload))["responses"] == entries, payload[:80]

    # Near misses of the request topic (exact match only, spec §3.1) and a forged
    # response: accepted (PUBACK 0), never answered, never routed — not even to the
    # admin subscribed to the response topic (spec §3.2).
    for pid, topic in enumerate(["$CONTROL/dynamic-security/v1/", "$CONTROL/dynamic-security",
                                 "$CONTROL/dynamic-security/V1", "$CONTROL/dynamic-security/v2",
                                 "$CONTROL/dynamic-security/v1/response"], 90):
        admin.client.publish(topic, b'{"commands":[{"command":"createGroup","groupname":"x"}]}',
                             qos=1, packet_id=pid)
        admin.client.expect("PUBACK", packet_id=pid, reason_code=0)
    admin.client.expect_nothing(0.5)

    # Many commands in one payload: one entry each, in order, correlationData echoed.
    count = 400
    payload = json.dumps({"commands": [bad_command(i)[0] for i in range(count)]}).encode()
    entries = json.loads(admin.send_raw(payload, timeout=30))["responses"]
    assert entries == [expected_entry(i) for i in range(count)]

    # A flood: 500 requests at QoS 0 without waiting, the witness doing QoS 1 round trips
    # between bursts; every request answered, in order.
    flood = 500
    responses = []
    for i in range(flood):
        admin.client.publish(REQUEST_TOPIC, json.dumps({"commands": [bad_command(i)[0]]}))
        if i % 100 == 99:
            witness_round_trip(witness, i)
            responses += [p["payload"] for p in admin.drain() if p["type"] == "PUBLISH"]
    deadline = time.monotonic() + 30
    while len(responses) < flood and time.monotonic() < deadline:
        p = admin.client.recv_packet(max(0.0, deadline - time.monotonic()))
        if p is not None and p["type"] == "PUBLISH":
            responses.append(p["payload"])
    assert len(responses) == flood, f"{len(responses)} of {flood} flood requests answered"
    assert [json.loads(r)["responses"] for r in responses] == \
        [[expected_entry(i)] for i in range(flood)]
    witness_round_trip(witness, flood)

    assert admin.snapshot() == before, "a failing command changed the state"
    assert file_stamp(path) == stamp, "a failing command rewrote dynamic-security.json"
    assert b.alive()


# --------------------------------------------------------------------------
# 4. Bootstrap of a missing file (spec §13.2; deviation `bootstrap-missing-file`)
# --------------------------------------------------------------------------

ENV_PASSWORD = "env-admin-pass-42"  # >= 12 characters


def test_missing_file_with_env_password(start_broker, broker_kind):
    """No dynamic-security.json and MOSQUITTO_DYNSEC_PASSWORD set. Culex (as Mosquitto
    2.1) generates the file with an `admin` that logs in with that password and can
    administer; Mosquitto 2.0.11 creates nothing and nobody can log in (spec §11.4)."""
    b = start_dynsec(start_broker, broker_kind, file=False, user_root=False,
                     env={"MOSQUITTO_DYNSEC_PASSWORD": ENV_PASSWORD})
    path = dynsec_path(b)
    # (A CONNECT answered first: Culex binds its listeners before it loads dynsec.)
    if broker_kind != "culex":
        assert connack(b, "admin", ENV_PASSWORD) == REFUSED[5]
        assert not path.exists()
        return
    assert connack(b, "admin", ENV_PASSWORD) == 0, b.log()
    assert path.exists(), b.log()
    assert path.stat().st_mode & 0o077 == 0, "the file holds password hashes: mode 0600"
    doc = json.loads(path.read_text())
    assert [c["username"] for c in doc["clients"]] == ["admin"]
    assert connack(b, "admin", ENV_PASSWORD) == 0
    assert connack(b, "admin", ENV_PASSWORD[:-1]) == REFUSED[5]
    ctrl(b, "createClient", "newuser", "-p", "pw-new", password=ENV_PASSWORD)
    assert ctrl(b, "listClients", password=ENV_PASSWORD).stdout.split() == ["admin", "newuser"]
    assert connack(b, "newuser", "pw-new") == 0
    assert not (b.dir / (path.name + ".pw")).exists(), "no random passwords in this mode"


def test_short_env_password_stops_startup(tmp_path, broker_kind):
    """MOSQUITTO_DYNSEC_PASSWORD shorter than 12 characters with no file: Culex refuses
    to start (non-zero exit) with a message naming the variable, and writes nothing."""
    if broker_kind != "culex":
        pytest.skip("Mosquitto 2.0.11 does not bootstrap (deviation bootstrap-missing-file)")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("\n".join([f"listener {free_port()} 127.0.0.1"]
                              + [ln.replace("{dir}", str(tmp_path)) for ln in dynsec_lines()])
                    + "\n")
    r = subprocess.run([broker_binary("culex"), "-c", str(conf)], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL,
                       env={**os.environ, "MOSQUITTO_DYNSEC_PASSWORD": "short-11chr"})
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "MOSQUITTO_DYNSEC_PASSWORD" in out and "12" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosquitto.conf"], \
        "nothing written"


def test_missing_file_without_env_writes_random_passwords(start_broker, broker_kind,
                                                          monkeypatch):
    """No file, no variable: Culex generates `admin` and `democlient` with random
    20-character passwords written to `<config file>.pw`, which is not readable by
    others; both passwords log in and admin can administer."""
    if broker_kind != "culex":
        pytest.skip("Mosquitto 2.0.11 does not bootstrap (deviation bootstrap-missing-file)")
    monkeypatch.delenv("MOSQUITTO_DYNSEC_PASSWORD", raising=False)
    b = start_dynsec(start_broker, broker_kind, file=False, user_root=False)
    assert connack(b) == REFUSED[5]  # served: start-up (and bootstrap) is complete
    pw_file = b.dir / (FILE_NAME + ".pw")
    assert pw_file.exists(), b.log()
    assert pw_file.stat().st_mode & 0o007 == 0, oct(pw_file.stat().st_mode)
    passwords = dict(line.split(" ", 1) for line in pw_file.read_text().splitlines())
    assert sorted(passwords) == ["admin", "democlient"]
    assert all(len(pw) == 20 for pw in passwords.values()), passwords
    for user, pw in passwords.items():
        assert connack(b, user, pw) == 0, user
        assert connack(b, user, pw[::-1]) == REFUSED[5], user
    assert ctrl(b, "listClients", password=passwords["admin"]).stdout.split() == \
        ["admin", "democlient"]


# --------------------------------------------------------------------------
# 5. The admin listener
# --------------------------------------------------------------------------


def test_control_api_on_the_admin_listener(start_broker, broker_kind):
    """Two listeners, the second marked `admin_listener true` (a Culex extension
    Mosquitto does not accept): the control API answers there, to the raw API and to
    mosquitto_ctrl, and what it changes applies to clients of the other listener."""
    if broker_kind != "culex":
        pytest.skip("admin_listener is a Culex option")
    admin_port = free_port()
    b = start_dynsec(start_broker, broker_kind,
                     extra=[f"listener {admin_port} 127.0.0.1", "admin_listener true"])
    admin = Admin(b, port=admin_port)
    assert admin.ok("listClients") == {"totalCount": 1, "clients": ["admin"]}
    admin.ok("createClient", username="app", password="pw-app")
    ctrl(b, "createClient", "app2", "-p", "pw-app2", port=admin_port)
    assert ctrl(b, "listClients", port=admin_port).stdout.split() == ["admin", "app", "app2"]
    assert connack(b, "app", "pw-app") == 0, "created on the admin listener, used on the other"
    assert connack(b, "app2", "pw-app2") == 0
    assert connack(b, "app", "pw-app", port=admin_port) == 0
    admin.ok("disableClient", username="app")
    assert connack(b, "app", "pw-app") == REFUSED[5]


# --------------------------------------------------------------------------
# 6. Persistence across restarts and brokers (spec §11)
# --------------------------------------------------------------------------


def populate(b) -> None:
    """A state touching every part of the file, made with mosquitto_ctrl."""
    ctrl(b, "createClient", "alice", "-p", "pw-alice")
    ctrl(b, "createClient", "bob", "-c", "bob-dev", "-p", "pw-bob")
    ctrl(b, "createClient", "carol", "-p", "pw-carol")
    ctrl(b, "disableClient", "carol")
    ctrl(b, "createRole", "writer")
    ctrl(b, "addRoleACL", "writer", "publishClientSend", "t/#", "allow", "3")
    ctrl(b, "addRoleACL", "writer", "publishClientSend", "t/secret", "deny", "7")
    ctrl(b, "addRoleACL", "writer", "subscribePattern", "t/+/x", "allow")
    ctrl(b, "createRole", "anon-role")
    ctrl(b, "addRoleACL", "anon-role", "publishClientSend", "pub/#", "allow")
    ctrl(b, "addClientRole", "alice", "writer", "5")
    ctrl(b, "createGroup", "team")
    ctrl(b, "addGroupRole", "team", "writer", "2")
    ctrl(b, "addGroupClient", "team", "bob", "4")
    ctrl(b, "createGroup", "anon")
    ctrl(b, "addGroupRole", "anon", "anon-role")
    ctrl(b, "setAnonymousGroup", "anon")
    Admin(b).ok("setDefaultACLAccess", acls=[{"acltype": "unsubscribe", "allow": False}])


def check_populated(b, passwords=True) -> None:
    """What populate() made, as clients see it."""
    expected = 0 if passwords else REFUSED[5]
    assert connack(b, "alice", "pw-alice") == expected
    assert connack(b, "bob", "pw-bob", client_id="bob-dev") == expected
    assert connack(b, "bob", "pw-bob", client_id="other") == REFUSED[5]
    assert connack(b, "carol", "pw-carol") == REFUSED[5], "carol stays disabled"
    assert connack(b, "admin", ADMIN_PASSWORD) == 0
    anon = login(b)
    assert publish_rc(anon, "pub/x") == NO_SUBSCRIBERS
    assert publish_rc(anon, "t/x", packet_id=2) == DENIED
    if passwords:
        alice = login(b, "alice", "pw-alice")
        assert [publish_rc(alice, t, packet_id=i) for i, t in
                enumerate(["t/a", "t/secret", "u/a"], 1)] == [NO_SUBSCRIBERS, DENIED, DENIED]
        assert subscribe_codes(alice, "t/a/x", "t/a/y") == [1, DENIED]
        assert alice.unsubscribe(9, ["t/a/x"])["reason_codes"] == [DENIED]


def test_changes_survive_a_restart(start_broker, broker_kind):
    """Everything changed through the API is in the file and comes back after a restart
    (SIGTERM) — logins, ACLs, groups, the anonymous group, default access — and the API
    shows the same state as before."""
    b = start_dynsec(start_broker, broker_kind, anonymous=True)
    populate(b)
    check_populated(b)
    before = Admin(b).snapshot()
    b.restart()
    assert Admin(b).snapshot() == before
    check_populated(b)


def saved_password_keys(path) -> dict:
    """Which password keys each client has in a dynamic-security.json."""
    doc = json.loads(path.read_text())
    keys = ("password", "salt", "iterations", "encoded_password")
    return {c["username"]: sorted(k for k in keys if k in c) for c in doc["clients"]}


TRIPLE = ["iterations", "password", "salt"]
ENCODED = ["encoded_password"]


def format_line(version: str) -> str:
    return f"new passwords are stored in Mosquitto {version} format"


def test_file_moves_between_mosquitto_and_culex(start_broker, broker_kind):
    """The rollback: a Mosquitto 2.0.11 user's file works unchanged in Culex (passwords
    set through `$CONTROL/dynamic-security/v1` on Mosquitto log in on Culex), and after
    passwords are set and clients created through the same API on Culex, Mosquitto
    2.0.11 loads the file Culex wrote with the same state and logs every user in,
    including those whose passwords Culex set (deviation `password-format-follows-file`:
    a 2.0 file stays in 2.0's password/salt/iterations form)."""
    if broker_kind != "culex":
        pytest.skip("a Mosquitto <-> Culex migration; runs once, on the culex kind")
    mosq = start_dynsec(start_broker, "mosquitto", anonymous=True)
    populate(mosq)
    state = Admin(mosq).snapshot()
    mosq.stop()
    mosquitto_file = dynsec_path(mosq).read_bytes()

    cx = start_dynsec(start_broker, "culex", anonymous=True, file=mosquitto_file)
    assert Admin(cx).snapshot() == state
    check_populated(cx)
    ctrl(cx, "setClientPassword", "alice", "pw-alice-2")
    ctrl(cx, "createClient", "dave", "-p", "pw-dave")
    Admin(cx).ok("setClientPassword", username="bob", password="pw-bob-2")
    state = Admin(cx).snapshot()
    cx.stop()

    back = start_dynsec(start_broker, "mosquitto", anonymous=True,
                        file=dynsec_path(cx).read_bytes())
    assert Admin(back).snapshot() == state
    assert connack(back, "alice", "pw-alice-2") == 0, back.log()
    assert connack(back, "alice", "pw-alice") == REFUSED[5], "the old password is gone"
    assert connack(back, "bob", "pw-bob-2", client_id="bob-dev") == 0
    assert connack(back, "dave", "pw-dave") == 0
    assert connack(back, "dave", "pw-dave!") == REFUSED[5]
    saved = saved_password_keys(dynsec_path(cx))
    assert saved == {name: TRIPLE for name in ("admin", "alice", "bob", "carol", "dave")}, \
        saved
    assert format_line("2.0") in cx.log(), cx.log()


def test_a_new_file_goes_back_to_mosquitto_2_0(start_broker, broker_kind):
    """A file Culex creates (no file at start, admin password from
    MOSQUITTO_DYNSEC_PASSWORD) with a client added through the control API loads in
    Mosquitto 2.0.11, and both log in there: new files use 2.0's password format."""
    if broker_kind != "culex":
        pytest.skip("Mosquitto 2.0.11 does not bootstrap (deviation bootstrap-missing-file)")
    cx = start_dynsec(start_broker, "culex", file=False, user_root=False,
                      env={"MOSQUITTO_DYNSEC_PASSWORD": ENV_PASSWORD})
    assert connack(cx, "admin", ENV_PASSWORD) == 0, cx.log()
    Admin(cx, password=ENV_PASSWORD).ok("createClient", username="erin", password="pw-erin")
    cx.stop()

    back = start_dynsec(start_broker, "mosquitto", file=dynsec_path(cx).read_bytes())
    assert connack(back, "admin", ENV_PASSWORD) == 0, back.log()
    assert connack(back, "erin", "pw-erin") == 0, back.log()
    assert connack(back, "erin", "pw-erin?") == REFUSED[5]
    saved = saved_password_keys(dynsec_path(cx))
    assert saved == {"admin": TRIPLE, "erin": TRIPLE}, saved
    assert format_line("2.0") in cx.log(), cx.log()


def encoded_password(password: str, iterations=1000) -> str:
    """Mosquitto 2.1's `$7$` form (spec §12) with a 64-byte salt."""
    import base64
    import hashlib
    salt = os.urandom(64)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}"
            f"${base64.b64encode(digest).decode()}")


def file_2_1() -> bytes:
    """A 2.1-format file: the `dynsec init` admin with its password as `encoded_password`."""
    doc = json.loads(init_file())
    for client in doc["clients"]:
        for key in ("password", "salt", "iterations"):
            client.pop(key)
        client["encoded_password"] = encoded_password(ADMIN_PASSWORD)
    return json.dumps(doc, indent="\t").encode()


@pytest.mark.parametrize("case", ["2.1 file", "option 2.1 on a 2.0 file",
                                  "option 2.0 on a 2.1 file"])
def test_password_format_is_kept_or_chosen(start_broker, broker_kind, case):
    """A file in Mosquitto 2.1's format keeps `encoded_password` for new passwords;
    `plugin_opt_password_format` overrides what the file uses. The start-up log names
    the format in use and why; passwords of either form log in."""
    if broker_kind != "culex":
        pytest.skip("Culex's choice of format; Mosquitto 2.0.11 writes only its own")
    file, extra, version, reason = {
        "2.1 file": (file_2_1(), [], "2.1", "uses"),
        "option 2.1 on a 2.0 file": (init_file(), ["plugin_opt_password_format 2.1"], "2.1",
                                     "plugin_opt_password_format"),
        "option 2.0 on a 2.1 file": (file_2_1(), ["plugin_opt_password_format 2.0"], "2.0",
                                     "plugin_opt_password_format"),
    }[case]
    b = start_dynsec(start_broker, broker_kind, file=file, user_root=False, extra=extra)
    admin_keys = saved_password_keys(dynsec_path(b))["admin"]
    Admin(b).ok("createClient", username="frank", password="pw-frank")
    line = next((ln for ln in b.log().splitlines() if format_line(version) in ln), None)
    assert line is not None and reason in line, b.log()
    assert connack(b, "frank", "pw-frank") == 0
    saved = saved_password_keys(dynsec_path(b))
    assert saved == {"admin": admin_keys, "frank": ENCODED if version == "2.1" else TRIPLE}, \
        saved
    b.restart()
    assert connack(b, "frank", "pw-frank") == 0
    assert connack(b, "admin", ADMIN_PASSWORD) == 0


def test_a_client_created_is_let_in_at_once_on_every_core(start_broker, broker_kind):
    """The response to createClient means the client may log in: connecting right after
    it (no pause), over several connections that the broker spreads over its cores, is
    never refused. Culex once sent the response before every core had the new rules, so
    a connection landing on another core could be refused."""
    b = start_dynsec(start_broker, broker_kind)
    admin = Admin(b)
    refused = []
    for i in range(40):
        admin.ok("createClient", username=f"burst{i}", password=f"pw-{i}")
        codes = [connack(b, f"burst{i}", f"pw-{i}", client_id=f"burst{i}-{k}", version=v)
                 for k, v in enumerate((5, 4, 5, 4))]
        refused += [(i, code) for code in codes if code != 0]
    admin.close()
    assert refused == [], refused
