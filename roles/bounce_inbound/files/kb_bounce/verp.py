# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decode the return path the MTAs write (Postfix VERP, delimiters ``+=``).

``bounces+alice=recipient.example@kb-bounces.kibamail.com`` names the
recipient ``alice@recipient.example`` and the return-path domain
``kb-bounces.kibamail.com``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

DEFAULT_LABEL = "kb-bounces"


@dataclass(frozen=True)
class ReturnPath:
    """A decoded VERP return path."""

    address: str
    recipient: str
    domain: str


def split_address(address: str) -> Optional[tuple]:
    """Split ``local@domain`` into its two parts, or return None."""
    address = address.strip().strip("<>").strip()
    if address.count("@") < 1:
        return None
    local, domain = address.rsplit("@", 1)
    if not local or not domain or any(c.isspace() for c in address):
        return None
    return local, domain.lower().rstrip(".")


def decode(address: str) -> Optional[ReturnPath]:
    """Decode a VERP address; None when it carries no recipient."""
    parts = split_address(address)
    if parts is None:
        return None
    local, domain = parts
    prefix, plus, encoded = local.partition("+")
    if not plus or not prefix or "=" not in encoded:
        return None
    rcpt_local, rcpt_domain = encoded.rsplit("=", 1)
    if not rcpt_local or not rcpt_domain or "." not in rcpt_domain or "@" in rcpt_domain:
        return None
    recipient = "%s@%s" % (rcpt_local, rcpt_domain.lower())
    return ReturnPath(address=address.strip().strip("<>"), recipient=recipient, domain=domain)


def customer_domain(return_path_domain: str, platform_domain: str, label: str = "kb-bounces") -> Optional[str]:
    """The customer a return-path domain belongs to (None for the platform's own)."""
    domain = return_path_domain.lower().rstrip(".")
    if domain == platform_domain.lower().rstrip("."):
        return None
    prefix = label.lower() + "."
    if domain.startswith(prefix) and domain.count(".") >= 2:
        return domain[len(prefix):]
    return None


def own_domains(platform_domain: str = "", label: str = DEFAULT_LABEL,
                return_path_domains: Iterable[str] = ()) -> Callable[[str], bool]:
    """A test for "is this one of our return-path domains".

    Used on VERP-looking addresses found inside a notice (the returned copy's
    Return-Path, the notice's To): other senders use the same ``+local=domain``
    scheme, and their addresses must not be read as ours.
    """
    platform = platform_domain.lower().rstrip(".")
    known = {d.lower().rstrip(".") for d in return_path_domains}
    prefix = label.lower() + "."

    def check(domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        return domain == platform or domain in known or (domain.startswith(prefix) and domain.count(".") >= 2)
    return check
