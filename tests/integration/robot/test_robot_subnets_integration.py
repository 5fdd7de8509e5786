# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""robot_subnet_info and robot_order through ansible-playbook against the stand-in."""

from __future__ import annotations

from robot_support import PASSWORD, ROOT, USER


def test_subnet_info_matches_pools(standin, playbook) -> None:
    pools = {"transactional": {"subnet": "192.0.2.0/24"}, "marketing": {"subnet": "198.51.100.0/24"},
             "spare": {"subnet": "203.0.113.128/25"}}
    run = playbook("subnets.yml", {"pools": pools})
    assert run.rc == 0, run.stdout[-3000:]
    result = run.result("Subnets")
    assert result["missing_pools"] == ["spare"]
    assert result["pools"]["transactional"]["routing_target"]["vswitch_id"] == 4001
    assert result["pools"]["marketing"]["mask"] == 24
    assert result["pools"]["marketing"]["routing_target"]["server_ip"] == "203.0.113.31"


def test_empty_account_is_not_an_error(standin, playbook) -> None:
    standin.state["subnets"] = []
    run = playbook("subnets.yml")
    assert run.rc == 0
    assert run.result("Subnets")["subnets"] == []
    assert standin.log[0]["status"] == 404 and standin.log[0]["code"] == "NOT_FOUND"


def test_order_defaults_to_a_dry_run_that_sends_no_order(standin, playbook) -> None:
    run = playbook("subnets.yml", {"order": True, "order_subnet": "198.18.1.0/29"})
    assert run.rc == 0, run.stdout[-3000:]
    result = run.result("Order")
    assert result["outcome"] == "dry_run" and result["changed"] is False
    assert [e for e in standin.log if e["method"] == "POST"] == []
    validated = playbook("subnets.yml", {"order": True, "order_subnet": "198.18.1.0/29", "order_validate": True})
    assert validated.rc == 0
    post = [e for e in standin.log if e["method"] == "POST"]
    assert len(post) == 1 and post[0]["form"]["test"] == "true"
    assert standin.snapshot()["transactions"] == []


def test_check_mode_sends_no_order(standin, playbook) -> None:
    run = playbook("subnets.yml", {"order": True, "order_test": False, "order_confirm": True}, check=True)
    assert run.rc == 0
    assert run.result("Order")["outcome"] == "would_order"
    assert not [e for e in standin.log if e["method"] == "POST"]


def test_real_order_waits_for_delivery_and_is_idempotent(standin, playbook) -> None:
    # The inventory holds a placeholder; Robot (the stand-in) chooses the address.
    extra = {"order": True, "order_test": False, "order_confirm": True, "order_subnet": "198.18.1.0/29"}
    first = playbook("subnets.yml", extra)
    assert first.rc == 0, first.stdout[-3000:]
    result = first.result("Order")
    assert result["changed"] is True and result["outcome"] == "ordered"
    assert result["transaction"]["status"] == "ready" and result["subnet"]["cidr"] == "203.0.113.64/29"
    assert result["inventory_matches"] is False and "platform_pools.transactional.subnet" in result["inventory_hint"]
    second = playbook("subnets.yml", extra)
    assert second.rc == 0
    assert second.result("Order")["outcome"] == "exists" and second.result("Order")["changed"] is False
    assert len(standin.requests("POST", "/order/server_addon/transaction")) == 1


def test_pending_order_is_not_repeated(standin, playbook) -> None:
    standin.state["order_ready_after"] = 10.0
    extra = {"order": True, "order_test": False, "order_confirm": True}
    standin.handle("POST", "/order/server_addon/transaction", {"Authorization": standin_auth()},
                   "server_number=101&product_id=subnet_ipv4_29&reason=x&test=false")
    standin.log.clear()
    run = playbook("subnets.yml", extra)
    assert run.rc == 0, run.stdout[-3000:]
    assert run.result("Order")["outcome"] == "pending" and run.result("Order")["changed"] is False
    assert run.result("Order")["subnet"]["cidr"] == "203.0.113.64/29"
    assert len(standin.snapshot()["transactions"]) == 1
    assert [e for e in standin.log if e["method"] == "POST"] == []


def standin_auth() -> str:
    import base64
    return "Basic " + base64.b64encode("{0}:{1}".format(USER, PASSWORD).encode()).decode()


def test_network_playbook_sets_every_ptr_of_the_lab_plan(standin, playbook) -> None:
    standin.state["subnets"].append({"ip": "203.0.113.0", "mask": 24, "gateway": "203.0.113.1", "server_ip": None,
                                     "server_number": None, "failover": False, "locked": False})
    args = ["--vault-password-file", str(ROOT / "inventories" / "lab.vault-password.lab-only")]
    first = playbook(str(ROOT / "playbooks" / "network.yml"), inventory=str(ROOT / "inventories" / "lab"), args=args)
    assert first.rc == 0, first.stdout[-3000:] + first.stderr[-2000:]
    batches = [r for name, r in first.results.items() if name.startswith("Set the PTR of every sending IP, batch")]
    assert len(batches) == 6 and all(r["changed"] for r in batches)      # robot_rdns_batch_size 100
    assert sum(r["summary"]["create"] for r in batches) > 500 and batches[-1]["remaining"] == []
    ptrs = standin.snapshot()["rdns"]
    # One name per sending IP, under its MTA's name: 192-0-2-10.us-mta1.kbmta.net.
    assert {p.split(".", 1)[1] for p in ptrs.values()} == {
        "us-mta1.kbmta.net", "us-mta2.kbmta.net", "eu-mta1.kbmta.net", "eu-mta2.kbmta.net"}
    assert all(p.split(".", 1)[0] == ip.replace(".", "-") for ip, p in ptrs.items())
    second = playbook(str(ROOT / "playbooks" / "network.yml"), inventory=str(ROOT / "inventories" / "lab"), args=args)
    assert second.rc == 0
    assert second.result("Plan the PTR of every sending IP")["changes"] == []
    assert not [name for name in second.results if name.startswith("Set the PTR of every sending IP, batch")]


def test_network_playbook_refuses_a_missing_pool_subnet(standin, playbook) -> None:
    args = ["--vault-password-file", str(ROOT / "inventories" / "lab.vault-password.lab-only")]
    run = playbook(str(ROOT / "playbooks" / "network.yml"), inventory=str(ROOT / "inventories" / "lab"), args=args)
    assert run.rc != 0
    assert "robot_order_subnets=true" in run.result("Fail when a pool has no subnet in Robot")["msg"]
    assert not [e for e in standin.log if e["method"] in ("PUT", "POST", "DELETE")]


def test_network_playbook_orders_a_missing_subnet_only_when_asked(standin, playbook) -> None:
    standin.state["products"]["101"].append({"id": "subnet_ipv4_24", "name": "Additional subnet /24"})
    # The stand-in's free space: it delivers the inventory's 203.0.113.0/24 because that is the first free /24.
    standin.state["servers"] = [dict(s, server_ip=s["server_ip"].replace("203.0.113.", "198.51.100.2"))
                                for s in standin.state["servers"]]
    standin.state["subnets"] = [s for s in standin.state["subnets"] if s["ip"] != "198.51.100.0"]
    standin.state["free_ranges"] = ["203.0.113.0/24"]
    args = ["--vault-password-file", str(ROOT / "inventories" / "lab.vault-password.lab-only")]
    inventory = str(ROOT / "inventories" / "lab")
    network = str(ROOT / "playbooks" / "network.yml")

    dry = playbook(network, {"robot_order_subnets": True, "robot_server_number": 101}, inventory=inventory, args=args)
    assert dry.rc != 0   # dry run done, then the missing subnet stops the play
    orders = dry.result("Order the missing pool subnets (dry run unless robot_order_confirm)")["results"]
    assert [(o["item"], o["outcome"]) for o in orders] == [("marketing", "dry_run")]
    assert standin.snapshot()["transactions"] == []
    assert standin.requests("POST", "/order/server_addon/transaction") == []

    real = playbook(network, {"robot_order_subnets": True, "robot_order_confirm": True, "robot_server_number": 101},
                    inventory=inventory, args=args)
    assert real.rc == 0, real.stdout[-3000:]
    orders = real.result("Order the missing pool subnets (dry run unless robot_order_confirm)")["results"]
    assert [(o["item"], o["outcome"], o["subnet"]["cidr"]) for o in orders] == [("marketing", "ordered", "203.0.113.0/24")]
    posts = [e["form"] for e in standin.log if e["path"] == "/order/server_addon/transaction" and e["method"] == "POST"]
    assert [(p["product_id"], p["server_number"], p["test"]) for p in posts] == [("subnet_ipv4_24", "101", "false")]
    assert posts[0]["reason"].endswith("[kibamail:marketing]")
    again = playbook(network, {"robot_order_subnets": True, "robot_order_confirm": True, "robot_server_number": 101},
                     inventory=inventory, args=args)
    assert again.rc == 0, again.stdout[-3000:]
    assert len(standin.requests("POST", "/order/server_addon/transaction")) == 1
    ptrs = standin.snapshot()["rdns"]
    assert ptrs["203.0.113.10"].startswith("203-0-113-10.eu-mta") and ptrs["192.0.2.10"].startswith("192-0-2-10.us-mta")
