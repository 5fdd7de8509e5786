# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the reliability suite (paths, ansible-playbook, docker, the lab description).

A module of its own (not conftest) so test modules import it by a name no other
test folder uses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BOUNCE_FILES = ROOT / "roles" / "bounce_inbound" / "files"
STANDINS = ROOT / "tests" / "standins"
SUPPORT = ROOT / "tests" / "support"
for _path in (BOUNCE_FILES, STANDINS, SUPPORT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from ansible_env import ansible_env  # noqa: E402  (tests/support)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s", re.MULTILINE)

# test name -> figures it recorded (printed and saved by conftest at the end of the run)
FIGURES: Dict[str, Dict[str, Any]] = {}


# ---------------------------------------------------------------- ansible


@dataclass
class PlaybookRun:
    """One ansible-playbook run."""

    rc: int
    stdout: str
    stderr: str

    def json(self) -> Dict[str, Any]:
        start = self.stdout.find("{")
        if start < 0:
            raise AssertionError("ansible-playbook printed no JSON (rc %d): %s %s"
                                 % (self.rc, self.stdout[-3000:], self.stderr[-3000:]))
        return json.loads(self.stdout[start:])

    @property
    def plain(self) -> str:
        """The default callback's output without colour codes (molecule sets ANSIBLE_FORCE_COLOR,
        which beats ANSIBLE_NOCOLOR)."""
        return ANSI.sub("", self.stdout)

    @property
    def recap(self) -> Dict[str, int]:
        """host -> changed count, from the PLAY RECAP of a default-callback run."""
        return {host: int(changed) for host, changed in RECAP.findall(self.plain)}

    def task(self, name: str, host: str = "localhost") -> Dict[str, Any]:
        """The result of the last task with this name on host."""
        found: Optional[Dict[str, Any]] = None
        for play in self.json().get("plays", []):
            for task in play.get("tasks", []):
                if task["task"]["name"] == name and host in task.get("hosts", {}):
                    found = task["hosts"][host]
        if found is None:
            raise AssertionError("task %r did not run: %s" % (name, self.stdout[-3000:]))
        return found


def run_playbook(args: List[str], json_output: bool = True, timeout: int = 900,
                 env_extra: Optional[Dict[str, str]] = None) -> PlaybookRun:
    """Run ansible-playbook from the checkout root; JSON callback unless told otherwise."""
    extra = {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json" if json_output else "ansible.builtin.default"}
    extra.update(env_extra or {})
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook")] + args, cwd=str(ROOT),
                          env=ansible_env(extra), capture_output=True, text=True, timeout=timeout, check=False)
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr)


# ---------------------------------------------------------------- the lab


@dataclass
class Lab:
    """What .lab/lab.json says about the running lab."""

    data: Dict[str, Any]
    directory: Path

    def host(self, name: str) -> Dict[str, Any]:
        return self.data["hosts"][name]

    def hosts_with_role(self, role: str) -> List[str]:
        return sorted(n for n, h in self.data["hosts"].items() if h.get("role") == role)

    def address(self, name: str) -> str:
        return str(self.host(name)["address"])

    def container(self, name: str) -> str:
        return str(self.host(name).get("container") or name)

    def spread_recipient(self, local: str, number: int) -> str:
        """local@ one of the receiver's domains, in turn by number. Postfix paces each destination
        domain on its own (the marketing profile: 1 s apart), so many messages to one domain
        queue behind that pace; real sending reaches many domains."""
        receiver = self.data["receiver"]
        domains = list(receiver.get("spread_domains") or [receiver["domain"]])
        return "%s@%s" % (local, domains[number % len(domains)])


def lab_env(lab: Lab) -> Dict[str, str]:
    """The environment scripts/lab.sh gives site.yml (export_lab_env)."""
    dns = lab.data["dns"]
    env = {"KB_LAB_DIR": str(lab.directory), "KB_LAB_JSON": str(lab.directory / "lab.json"),
           "KB_LAB_DNS_SERVER": str(dns["address"]), "KB_LAB_DNS_PORT": str(dns.get("port", 53)),
           "KB_LAB_TSIG_KEY_FILE": str(dns["tsig"]["key_file"]), "KB_LAB_TSIG_KEY_NAME": str(dns["tsig"]["name"]),
           "KB_LAB_TSIG_ALGORITHM": str(dns["tsig"]["algorithm"]),
           "KB_ROBOT_URL": str(lab.data["standins"]["robot"]["url"]),
           "KB_CLOUD_DNS_URL": str(lab.data["standins"]["cloud_dns"]["url"])}
    secret = lab.directory / "tsig.secret"
    if secret.exists():
        env["KB_LAB_TSIG_SECRET"] = secret.read_text().strip()
    return env


def run_lab_playbooks(lab: Lab, args: List[str], timeout: int = 3600) -> PlaybookRun:
    """ansible-playbook against the running lab as scripts/lab.sh runs it (its inventory, vault,
    environment and the settings this machine forces on it); default output, for the recap."""
    full = ["-i", str(ROOT / lab.data.get("inventory", "inventories/lab")),
            "--vault-password-file", str(VAULT_PASSWORD_FILE)] + args
    forced = lab.directory / "site-extra-vars.yml"      # what lab.sh passes site.yml on this machine
    if forced.exists():
        full += ["-e", "@%s" % forced]
    return run_playbook(full, json_output=False, timeout=timeout, env_extra=lab_env(lab))


def docker(*args: str, timeout: int = 120, check: bool = True, stdin: Optional[bytes] = None) -> subprocess.CompletedProcess:
    """Run the docker client; with check, a failure raises with its output."""
    proc = subprocess.run(["docker"] + list(args), capture_output=True, timeout=timeout, input=stdin, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("docker %s failed (%d): %s" % (" ".join(args), proc.returncode,
                                                            proc.stderr.decode("utf-8", "replace")[-2000:]))
    return proc


def container_running(name: str) -> bool:
    proc = docker("inspect", "-f", "{{.State.Running}}", name, check=False)
    return proc.returncode == 0 and proc.stdout.decode().strip() == "true"


# ---------------------------------------------------------------- lab helpers

VAULT_FILE = ROOT / "inventories" / "lab" / "group_vars" / "all" / "vault.yml"
VAULT_PASSWORD_FILE = ROOT / "inventories" / "lab.vault-password.lab-only"


def lab_vault() -> Dict[str, Any]:
    """The lab vault's variables, decrypted with the lab-only password file."""
    import yaml
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD_FILE.read_bytes().strip()))])

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!vault", lambda loader, node: vault.decrypt(node.value.encode()).decode("utf-8"))
    with open(VAULT_FILE, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=Loader)  # noqa: S506 - SafeLoader plus the !vault tag only


def lab_secrets(lab_dir: Path) -> Dict[str, str]:
    """Every secret of the lab, by a name for the report: vault values, the TSIG secret, DKIM private keys.

    A DKIM key is checked by each line of its PEM body (a leak of any line is a leak)."""
    secrets: Dict[str, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, "%s.%s" % (path, key) if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, "%s[%d]" % (path, index))
        elif isinstance(value, str) and value:
            secrets[path] = value

    walk(lab_vault(), "")
    tsig = lab_dir / "tsig.secret"
    if tsig.exists():
        secrets["tsig.secret"] = tsig.read_text().strip()
    for key_file in sorted((lab_dir / "dkim").glob("*.key")):
        body = [line for line in key_file.read_text().splitlines() if line and not line.startswith("-----")]
        for index, line in enumerate(body):
            if len(line) >= 16:
                secrets["%s line %d" % (key_file.name, index + 1)] = line
    return secrets


def lab_resolver(data: Dict[str, Any]) -> Any:
    """A dnspython resolver that asks the lab's stock recursive resolver (kb-resolver), as a receiver does."""
    import dns.resolver  # pylint: disable=import-outside-toplevel

    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [data["resolver"]["address"]]
    res.port = int(data["resolver"]["port"])
    res.lifetime = 10.0
    return res


def python_in(container: str, source: str, args: List[str], timeout: int = 120) -> subprocess.CompletedProcess:
    """Run a Python snippet with python3 inside a lab container."""
    return subprocess.run(["docker", "exec", "-i", container, "python3", "-c", source] + args,
                          capture_output=True, timeout=timeout, check=False)


RECEIVER_MESSAGES = r'''
import email.parser, json, os, sys
store, tag, wanted = sys.argv[1], sys.argv[2], set(sys.argv[3:])
found = []
for name in sorted(os.listdir(store) if os.path.isdir(store) else []):
    if not name.endswith(".eml"):
        continue
    with open(os.path.join(store, name), "rb") as handle:
        headers = email.parser.BytesHeaderParser().parse(handle)
    value = (headers.get("Message-ID") or "").strip()
    if tag in value and (not wanted or value in wanted):
        received = [" ".join(r.split()) for r in headers.get_all("Received") or []] if wanted else []
        found.append({"id": value, "file": name, "received": received[:3]})
print(json.dumps(found))
'''


def _receiver_messages(receiver: str, store: str, tag: str, message_ids: List[str]) -> List[Dict[str, Any]]:
    proc = python_in(receiver, RECEIVER_MESSAGES, [store, tag] + list(message_ids))
    if proc.returncode != 0:
        raise AssertionError("cannot read the receiver's store: %s" % proc.stderr.decode("utf-8", "replace")[-2000:])
    return list(json.loads(proc.stdout.decode()))


def receiver_message_ids(receiver: str, store: str, tag: str) -> List[str]:
    """Message-IDs containing tag in the lab receiver's store (one entry per stored copy)."""
    return [found["id"] for found in _receiver_messages(receiver, store, tag, [])]


def receiver_copies(receiver: str, store: str, message_ids: List[str]) -> Dict[str, List[Dict[str, Any]]]:
    """For each Message-ID, every stored copy with its file name and newest Received headers: which
    MTA and queue ID each copy came through, to tell a client's resend from an MTA's redelivery."""
    copies: Dict[str, List[Dict[str, Any]]] = {}
    for found in _receiver_messages(receiver, store, "", message_ids):
        copies.setdefault(found["id"], []).append({"file": found["file"], "received": found["received"]})
    return copies
