"""The cluster control API end to end (`$CONTROL/cedalo/ha/v1` on each node's admin
listener): the seed's procedure to create a three-node cluster, growing it to four,
moving leadership, removing a node that then runs standalone with its data, deleting
the cluster; and every error case of the API answered with an error that changes
nothing."""

from __future__ import annotations

import cluster as c


def test_seed_procedure_then_grow_move_shrink_and_delete(cluster4):
    cl = cluster4
    n1, n2, n3, n4 = cl.nodes
    three = [n1, n2, n3]
    leader = cl.create(sync="full", nodes=three)
    assert leader is n1, "the creating node leads first"
    data = n1.ha_ok("getCluster")
    assert data["clustername"] == "plant" and data["syncmode"] == "full"
    assert data["state"] == "active" and data["leader"] == 1
    assert [(x["nodeid"], x["online"]) for x in data["nodes"]] == [(1, True), (2, True), (3, True)]
    assert [x["role"] for x in data["nodes"]] == ["leader", "follower", "follower"]
    # Full Sync: only the leader serves clients (node 4, outside the cluster, serves too).
    c.wait_until("only node 1 of the cluster serving", lambda: cl.serving() == [1, 4], 5)

    # A fourth node: addNode on the leader, joinCluster on it; a voter once caught up.
    n1.ha_ok("addNode", clustername="plant", **{"nodeid": 4, "address": n4.host,
                                                "port": n4.cluster_port})
    n4.ha_ok("joinCluster", clustername="plant", nodes=cl.entries(cl.nodes, n4))

    def four_voters():
        nodes = n1.ha_ok("getCluster")["nodes"]
        return len(nodes) == 4 and all(x["role"] in ("leader", "follower") and x["online"]
                                       for x in nodes)
    c.wait_until("node 4 a voter", four_voters, 15)

    # setLeader: leadership moves to node 4, which then serves clients alone.
    n1.ha_ok("setLeader", nodeid=4)
    assert cl.wait_leader() is n4
    c.wait_until("only node 4 serving", lambda: cl.serving() == [4], 5)
    assert n4.ha_ok("isLeader") == {"leader": True}
    assert n1.ha_ok("isLeader") == {"leader": False}

    # removeNode of node 2, then leaveCluster on it: it runs standalone with its data.
    n4.ha_ok("removeNode", clustername="plant", nodeid=2, address=n2.host,
             port=n2.cluster_port)
    c.wait_until("three members", lambda: len(n4.ha_ok("getCluster")["nodes"]) == 3, 10)
    n2.ha_ok("leaveCluster", clustername="plant", nodeid=2, address=n2.host,
             port=n2.cluster_port)
    info = n2.get_node()
    assert info["role"] == "standalone" and "clustername" not in info
    assert info["clientListenersOpen"] is True
    c.wait_until("node 2 serving standalone", n2.serving, 5)
    # Its data stays: the cluster's admin still logs in there.
    n2.dynsec_admin().close()

    # deleteCluster: every member runs standalone.
    n4.ha_ok("deleteCluster", clustername="plant")
    for node in (n1, n3, n4):
        c.wait_until(f"node {node.i} standalone",
                     lambda node=node: node.get_node()["role"] == "standalone", 10)
        c.wait_until(f"node {node.i} serving", node.serving, 5)


def test_errors_change_nothing(cluster):
    cl = cluster
    n1, n2, n3 = cl.nodes
    # Fewer than three nodes, bad fields: refused before anything exists.
    two = [n1.entry(mine=True), n2.entry()]
    assert "3" in n1.ha_error("createCluster", clustername="plant", nodes=two)
    bad = cl.entries(cl.nodes, n1)
    bad[1]["port"] = 70000
    assert "port" in n1.ha_error("createCluster", clustername="plant", nodes=bad)
    assert "clustername" in n1.ha_error("createCluster", nodes=cl.entries(cl.nodes, n1))
    duplicate = cl.entries(cl.nodes, n1)
    duplicate[2]["nodeid"] = 2
    assert "node id 2" in n1.ha_error("createCluster", clustername="plant", nodes=duplicate)
    # A mynode entry with an address that is not this machine's: it cannot listen there.
    elsewhere = cl.entries(cl.nodes, n1)
    elsewhere[0]["address"] = "192.0.2.1"
    assert "this node" in n1.ha_error("createCluster", clustername="plant", nodes=elsewhere)
    for node in cl.nodes:
        assert node.get_node()["role"] == "standalone"
    # Leader-only commands outside a cluster.
    assert "not in a cluster" in n1.ha_error("getCluster")

    leader = cl.create(sync="dynsec")
    before = leader.ha_ok("getCluster")
    follower = n2 if leader is not n2 else n3
    # Not the leader: the error names the leader's id and address.
    text = follower.ha_error("addNode", clustername="plant", nodeid=9, address="127.0.0.9",
                             port=7000)
    assert f"node {leader.id}" in text and leader.host in text, text
    # Already in a cluster.
    assert "already in a cluster" in n1.ha_error(
        "createCluster", clustername="other", nodes=cl.entries(cl.nodes, n1))
    assert "already in a cluster" in n2.ha_error(
        "joinCluster", clustername="plant", nodes=cl.entries(cl.nodes, n2))
    # Wrong cluster name, duplicate node id and address, too few would remain.
    assert "clustername" in leader.ha_error("deleteCluster", clustername="nope")
    assert "nodeid" in leader.ha_error("addNode", clustername="plant", nodeid=2,
                                       address="127.0.0.9", port=7000)
    assert "address" in leader.ha_error("addNode", clustername="plant", nodeid=9,
                                        address=n2.host, port=n2.cluster_port)
    assert "3" in leader.ha_error("removeNode", clustername="plant", nodeid=n2.id,
                                  address=n2.host, port=n2.cluster_port)
    assert "match" in leader.ha_error("removeNode", clustername="plant", nodeid=n2.id,
                                      address=n3.host, port=n3.cluster_port)
    assert "nodeid" in leader.ha_error("setLeader", nodeid=99)
    # leaveCluster naming another node, or while still a member.
    assert "this node" in n2.ha_error("leaveCluster", clustername="plant", nodeid=3,
                                      address=n3.host, port=n3.cluster_port)
    assert "member" in n2.ha_error("leaveCluster", clustername="plant", nodeid=2,
                                   address=n2.host, port=n2.cluster_port)
    # Unknown fields and wrong types.
    assert "field" in leader.ha_error("getCluster", extra=1)
    assert "nodeid" in leader.ha_error("setLeader", nodeid="2")
    after = leader.ha_ok("getCluster")
    for key in ("clustername", "syncmode", "leader", "term"):
        assert after[key] == before[key], key
    assert [x["nodeid"] for x in after["nodes"]] == [1, 2, 3]
