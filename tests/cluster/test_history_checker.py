"""The failover checker (history.py) on made-up histories: it accepts a correct one and
names each kind of broken promise."""

from __future__ import annotations

from history import History, check, matches


def base(qos=1) -> History:
    h = History(qos=qos)
    h.subscribed("s1", ["t/a", "t/+"])
    h.subscribed("s2", ["t/b"])
    for seq in range(3):
        h.send("p", seq, "t/a")
        h.ack("p", seq)
    h.send("p", 3, "t/b")  # never acknowledged
    h.send("p", 4, "r/p", retain=True)
    h.ack("p", 4)
    h.retained_final["r/p"] = ("p", 4)
    return h


def deliver_all(h: History):
    for seq in range(3):
        h.deliver("s1", "p", seq, "t/a")


def test_matching():
    assert matches("t/+", "t/a") and matches("#", "t/a/b") and matches("t/#", "t")
    assert not matches("t/+", "t/a/b") and not matches("t/a", "t/b")


def test_a_correct_history_passes():
    h = base()
    deliver_all(h)
    h.deliver("s1", "p", 1, "t/a")  # a QoS 1 redelivery is allowed
    h.reconnected("s1", True)
    assert check(h) == []
    assert h.missing() == 0


def test_each_broken_promise_is_named():
    h = base(qos=2)
    h.deliver("s1", "p", 2, "t/a")
    h.deliver("s1", "p", 1, "t/a")  # out of order, and p/0 never delivered
    h.deliver("s1", "p", 1, "t/a")  # twice at QoS 2
    h.deliver("s2", "p", 9, "t/b")  # never published
    h.deliver("s2", "p", 2, "t/a")  # s2 does not match t/a
    h.reconnected("s2", False)
    h.retained_final["r/p"] = None
    found = "\n".join(check(h))
    assert h.missing() == 1
    for text in ("s1: acknowledged and never delivered: ('p', 0)",
                 "s1: delivered more than once at QoS 2: ('p', 1)",
                 "s1: out of publisher order",
                 "s2: delivered but never published",
                 "s2: delivered without a matching subscription",
                 "s2: reconnects that found no session",
                 "retained r/p: holds None"):
        assert text in found, found
