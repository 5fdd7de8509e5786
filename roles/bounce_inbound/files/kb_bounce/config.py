# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The processor's settings, read from one JSON file written by the role."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Dict

DEFAULT_PATH = "/etc/kb-bounce/config.json"


class ConfigError(Exception):
    """The configuration file is missing or wrong."""


@dataclass
class Config:
    """Settings of kb-bounce (see the role's argument specs for their meaning)."""

    database: str = "/var/lib/kb-bounce/events.sqlite3"
    quarantine_dir: str = "/var/lib/kb-bounce/quarantine"
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_timeout: float = 10.0
    retry_initial_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    poll_interval: float = 5.0
    batch_size: int = 100
    platform_bounce_domain: str = "kb-bounces.kbmta.net"
    return_path_label: str = "kb-bounces"
    customers: Dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 20 * 1024 * 1024


def load(path: str = DEFAULT_PATH) -> Config:
    """Read the configuration file; unknown keys are an error (a typo must not pass silently)."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc.strerror)) from exc
    except ValueError as exc:
        raise ConfigError("%s is not valid JSON: %s" % (path, exc)) from exc
    return from_dict(data, path)


def from_dict(data: Dict[str, object], origin: str = "configuration") -> Config:
    """Build a Config from plain data."""
    if not isinstance(data, dict):
        raise ConfigError("%s must hold a JSON object" % origin)
    known = {f.name: f for f in fields(Config)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError("%s: unknown settings %s; known: %s" % (origin, ", ".join(unknown), ", ".join(sorted(known))))
    values: Dict[str, object] = {}
    for name, value in data.items():
        if name == "customers":
            values[name] = _customers(value, origin)
            continue
        default = getattr(Config, name)
        try:
            values[name] = type(default)(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError("%s: %s must be a %s, got %r" % (origin, name, type(default).__name__, value)) from exc
    config = Config(**values)
    if config.retry_initial_seconds <= 0 or config.retry_max_seconds < config.retry_initial_seconds:
        raise ConfigError("%s: need 0 < retry_initial_seconds <= retry_max_seconds" % origin)
    return config


def _customers(value: object, origin: str) -> Dict[str, str]:
    """Return-path domain -> customer domain, both lower case."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError("%s: customers must map return-path domains to customer domains (strings)" % origin)
    return {k.lower().rstrip("."): v.lower().rstrip(".") for k, v in value.items()}
