# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Relay, auth and secrets on the running lab.

- No relay without authentication, through either load balancer and directly at every MTA
  listener (with a PROXY header sent from a load balancer container, as the balancer would).
- No AUTH before TLS; a customer login may not send as another domain (or as an address of its
  own domain it was not given).
- The bounce listener takes mail for bounce domains only.
- A -vvv run of site.yml prints none of the lab's secrets; key files have the right owner and mode.

Every refusal test has a positive control in the same conversation shape, so a listener that is
simply down cannot pass for one that refuses.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List

import pytest

from reliability_support import Lab, docker, lab_secrets, lab_vault, run_lab_playbooks
from smtp_probe import codes, probe

pytestmark = pytest.mark.lab

SENDER = "support@kibamail.com"
OUTSIDER = "mallory@outside.example"
PROBE_SOURCE = (Path(__file__).resolve().parent / "smtp_probe.py").read_text()
MTA_LISTENERS = (2525, 2587, 2465)   # PROXY-protocol listeners of roles/mta (mta_listen_*)


def sasl_password() -> str:
    return str(lab_vault()["vault_sasl_passwords"][SENDER])


def recipient(lab: Lab, local: str = "rel-probe") -> str:
    return "%s@%s" % (local, lab.data["receiver"]["domain"])


def refused(result: Dict[str, Any]) -> bool:
    """The envelope was refused: no RCPT got a 2xx (a refused MAIL, or a dropped connection, counts)."""
    return not any(code // 100 == 2 for code in codes(result, "rcpt"))


def probe_in(container: str, request: Dict[str, Any]) -> Dict[str, Any]:
    proc = docker("exec", "-i", container, "python3", "-c", PROBE_SOURCE, json.dumps(request), timeout=120)
    return json.loads(proc.stdout.decode())


def load_balancers(lab: Lab) -> List[str]:
    return [lab.data["submission"][pool]["address"] for pool in sorted(lab.data["submission"])]


# ---------------------------------------------------------------- relay through the load balancers


@pytest.mark.parametrize("port", [25, 587])
def test_no_unauthenticated_relay_through_the_load_balancers(lab: Lab, port: int, figures: Dict[str, Any]) -> None:
    tried = 0
    for address in load_balancers(lab):
        for mail_from in (OUTSIDER, SENDER, ""):
            result = probe({"host": address, "port": port, "starttls": port == 587, "mail_from": mail_from,
                            "rcpt_to": [recipient(lab)]})
            assert result["banner"] == 220, "no SMTP service at %s:%d: %s" % (address, port, result)
            assert result["error"] is None or codes(result, "mail"), result
            assert refused(result), "relay accepted at %s:%d from <%s>: %s" % (address, port, mail_from, result)
            tried += 1
    # Positive control: the transactional balancer relays for the customer once authenticated.
    control = probe({"host": lab.data["submission"]["transactional"]["address"], "port": 587, "starttls": True,
                     "auth": [SENDER, sasl_password()], "mail_from": SENDER, "rcpt_to": [recipient(lab)]})
    assert codes(control, "auth") == [235] and codes(control, "rcpt") == [250], control
    figures.update(relay_attempts_refused=tried)


def test_auth_is_refused_before_tls(lab: Lab) -> None:
    for address in load_balancers(lab):
        for port in (25, 587):
            result = probe({"host": address, "port": port, "try_auth_before_tls": True, "mail_from": SENDER,
                            "rcpt_to": [recipient(lab)]})
            assert result["banner"] == 220, result
            assert result["auth_advertised_before_tls"] is False, "AUTH offered before STARTTLS at %s:%d" % (address, port)
            assert all(code // 100 == 5 for code in codes(result, "auth-before-tls")), result
            assert refused(result), result


@pytest.mark.parametrize("mail_from", ["ceo@other-customer.example", "billing@kibamail.com", "support@kibamail.com.evil.example"])
def test_customer_login_cannot_send_as_someone_else(lab: Lab, mail_from: str) -> None:
    address = lab.data["submission"]["transactional"]["address"]
    result = probe({"host": address, "port": 587, "starttls": True, "auth": [SENDER, sasl_password()],
                    "mail_from": mail_from, "rcpt_to": [recipient(lab)]})
    assert codes(result, "auth") == [235], result
    assert refused(result), "%s could send as %s: %s" % (SENDER, mail_from, result)
    assert any(code // 100 == 5 for code in codes(result, "mail") + codes(result, "rcpt")), result
    control = probe({"host": address, "port": 587, "starttls": True, "auth": [SENDER, sasl_password()],
                     "mail_from": SENDER, "rcpt_to": [recipient(lab)]})
    assert codes(control, "rcpt") == [250], control


def test_wrong_password_is_refused(lab: Lab) -> None:
    address = lab.data["submission"]["transactional"]["address"]
    result = probe({"host": address, "port": 587, "starttls": True, "auth": [SENDER, "not-the-password"],
                    "mail_from": SENDER, "rcpt_to": [recipient(lab)]})
    assert codes(result, "auth") and codes(result, "auth")[0] == 535, result
    assert refused(result), result


# ---------------------------------------------------------------- directly at the MTAs


def test_no_relay_directly_at_any_mta_listener(lab: Lab, figures: Dict[str, Any]) -> None:
    """From a load balancer container (a trusted PROXY source), with a PROXY header naming an
    outside client: every listener answers, and none relays without AUTH."""
    # Each MTA trusts only its own pool's load balancers: probe it from one of them.
    pools = [("mta_transactional", "lb_transactional"), ("mta_marketing", "lb_marketing")]
    mtas = [(mta, lab.container(lab.hosts_with_role(lb_role)[0])) for mta_role, lb_role in pools
            for mta in lab.hosts_with_role(mta_role)]
    tried = 0
    for mta, lb in mtas:
        for port in MTA_LISTENERS:
            request = {"host": lab.address(mta), "port": port, "proxy": "203.0.113.99", "starttls": port != 2465,
                       "wrapper": port == 2465, "mail_from": OUTSIDER, "rcpt_to": [recipient(lab)]}
            if port == 2465:
                request.pop("proxy")      # implicit TLS: smtplib cannot prefix PROXY; the direct probe below covers it
            result = probe_in(lb, request)
            assert refused(result), "%s:%d relayed for an outside client: %s" % (mta, port, result)
            if port != 2465:
                assert result["banner"] == 220, "%s:%d did not answer a PROXY-prefixed connection: %s" % (mta, port, result)
            tried += 1
        # Port 25 of every MTA is the bounce listener: open to the world, relays nothing.
        result = probe({"host": lab.address(mta), "port": 25, "mail_from": OUTSIDER, "rcpt_to": [recipient(lab)]})
        assert result["banner"] == 220 and refused(result), "%s:25: %s" % (mta, result)
        tried += 1
    figures.update(mta_listeners_probed=tried, relayed=0)


def test_mta_listeners_ignore_clients_that_are_not_load_balancers(lab: Lab) -> None:
    """Straight from the host, without a PROXY header: no PROXY listener holds an SMTP conversation.
    A dropped connection costs the whole timeout, so the listeners are probed side by side."""
    listeners = [(mta, port) for mta in lab.hosts_with_role("mta_transactional") + lab.hosts_with_role("mta_marketing")
                 for port in (2525, 2587)]
    assert len(listeners) >= 4, "lab.json lists no MTA of one of the pools: %s" % listeners
    with ThreadPoolExecutor(max_workers=len(listeners)) as pool:
        results = list(pool.map(lambda listener: probe({
            "host": lab.address(listener[0]), "port": listener[1], "timeout": 15, "mail_from": OUTSIDER,
            "rcpt_to": [recipient(lab)]}), listeners))
    for (mta, port), result in zip(listeners, results):
        assert refused(result), "%s:%d: %s" % (mta, port, result)


# ---------------------------------------------------------------- the bounce listener


def test_bounce_listener_takes_only_bounce_domains(lab: Lab, figures: Dict[str, Any]) -> None:
    bounce = "bounces+rel-probe=recipient.example@kb-bounces.kibamail.com"
    others = ["postmaster@kibamail.com", "someone@kbmta.net", recipient(lab), "x@kb-bounces.other.example"]
    tried = 0
    for mta in lab.hosts_with_role("mta_transactional") + lab.hosts_with_role("mta_marketing"):
        control = probe({"host": lab.address(mta), "port": 25, "mail_from": "", "rcpt_to": [bounce]})
        assert codes(control, "rcpt") == [250], "%s refused a bounce for its own domain: %s" % (mta, control)
        for rcpt in others:
            result = probe({"host": lab.address(mta), "port": 25, "mail_from": "", "rcpt_to": [rcpt]})
            assert result["banner"] == 220 and refused(result), "%s accepted %s: %s" % (mta, rcpt, result)
            assert any(code // 100 == 5 for code in codes(result, "rcpt")), result
            tried += 1
    figures.update(non_bounce_recipients_refused=tried)


# ---------------------------------------------------------------- secrets


TASK_OR_CHANGED = re.compile(r"^(?:TASK \[(?P<task>[^\]]+)\]|changed: \[(?P<host>[^\]]+)\])", re.MULTILINE)


def changed_tasks(output: str) -> List[str]:
    """'host: task' for every task a default-callback run reports as changed."""
    found: List[str] = []
    task = "?"
    for match in TASK_OR_CHANGED.finditer(output):
        if match.group("task"):
            task = match.group("task")
        else:
            found.append("%s: %s" % (match.group("host"), task))
    return found


# One run serves two checks: the lab is converged when this runs (the platform scenario
# runs it right after its first converge, as its idempotence run; `make lab` converged
# twice), so the run must change nothing, and its -vvv output must show no secret.
@pytest.mark.site_run
def test_verbose_site_run_leaks_no_secret(lab: Lab, figures: Dict[str, Any]) -> None:
    secrets = lab_secrets(lab.directory)
    assert any(name.startswith("vault_sasl_passwords") for name in secrets)
    assert any("key line" in name for name in secrets), "no DKIM private key found under %s/dkim" % lab.directory
    started = time.monotonic()
    run = run_lab_playbooks(lab, ["site.yml", "-vvv"])
    output = run.stdout + run.stderr
    assert run.rc == 0, output[-4000:]
    leaked = sorted(name for name, value in secrets.items() if value in output)
    assert not leaked, "secrets printed by site.yml -vvv: %s" % leaked
    plain = run.plain
    recap = run.recap
    assert recap, "no PLAY RECAP in the site.yml output: %s" % plain[-3000:]
    changed = sorted(host for host, count in recap.items() if count)
    assert not changed, ("site.yml on the converged lab changed something (not idempotent) on %s: %s"
                         % (", ".join(changed), "; ".join(changed_tasks(plain))))
    figures.update(secrets_checked=len(secrets), output_bytes=len(output), leaked=0, hosts_unchanged=len(recap),
                   seconds=round(time.monotonic() - started, 1))


KEY_FILES = r'''
import glob, json, os, pwd, grp, stat
patterns = ["/etc/opendkim/keys/*.key", "/etc/postfix/kibamail-tls/*.key", "/etc/dovecot/kibamail-passwd",
            "/etc/kb-bounce/config.json"]
found = {}
for pattern in patterns:
    for path in glob.glob(pattern):
        info = os.stat(path)
        found[path] = {"owner": pwd.getpwuid(info.st_uid).pw_name, "group": grp.getgrgid(info.st_gid).gr_name,
                       "mode": "%04o" % stat.S_IMODE(info.st_mode)}
print(json.dumps(found))
'''

EXPECTED = {
    "/etc/opendkim/keys/": ("opendkim", "0600"),
    "/etc/postfix/kibamail-tls/": ("root", "0600"),
    "/etc/dovecot/kibamail-passwd": ("root", "0640"),
}


def test_key_files_have_the_right_owner_and_mode(lab: Lab, figures: Dict[str, Any]) -> None:
    checked = 0
    transactional = set(lab.hosts_with_role("mta_transactional"))
    for mta in lab.hosts_with_role("mta_transactional") + lab.hosts_with_role("mta_marketing"):
        container = lab.container(mta)
        files = json.loads(docker("exec", "-i", container, "python3", "-c", KEY_FILES).stdout.decode())
        # The lab's only customer (kibamail.com) sends from the transactional pool: the
        # marketing MTAs hold no DKIM key at all.
        required = [p for p in EXPECTED if mta in transactional or not p.startswith("/etc/opendkim/")]
        for prefix in required:
            assert any(path.startswith(prefix) for path in files), "%s: no file under %s" % (mta, prefix)
        for path, info in files.items():
            assert int(info["mode"], 8) & 0o007 == 0, "%s:%s is readable by others (%s)" % (mta, path, info)
            for prefix, (owner, mode) in EXPECTED.items():
                if path.startswith(prefix):
                    assert (info["owner"], info["mode"]) == (owner, mode), "%s:%s is %s" % (mta, path, info)
            # And the kernel agrees: an unprivileged user cannot read it.
            denied = docker("exec", "-u", "nobody", container, "cat", path, check=False)
            assert denied.returncode != 0 and b"Permission denied" in denied.stderr, "%s:%s readable by nobody" % (mta, path)
            checked += 1
    figures.update(key_files_checked=checked)
