# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scripted Robot API for unit tests: answers from a list, records every
request, and runs a module's main() against it."""

from __future__ import annotations

import base64
import json
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.kibamail.email_platform.plugins.module_utils import robot as robot_utils
from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import HttpRequest, HttpResponse

URL = "http://robot.test"
AUTH = "Basic " + base64.b64encode(b"robot:s3cret").decode("ascii")
Wire = Tuple[str, str, Optional[str]]


class Script:
    """A transport that answers from a script and records every request."""

    def __init__(self, answers: List[Tuple[int, Any]]) -> None:
        self.answers = list(answers)
        self.requests: List[HttpRequest] = []

    def __call__(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.requests.append(request)
        assert self.answers, "unexpected request {0} {1}".format(request.method, request.url)
        status, body = self.answers.pop(0)
        if isinstance(body, Exception):
            raise body
        return HttpResponse(status, b"" if body is None else json.dumps(body).encode("utf-8"))

    def wire(self, base: str = URL) -> List[Wire]:
        """(method, path, form body) of every request, after checking each carried the credentials."""
        assert all(r.headers["Authorization"] == AUTH for r in self.requests)
        return [(r.method, r.url[len(base):], r.body) for r in self.requests]


def err(status: int, code: str, **extra: Any) -> Tuple[int, Any]:
    """The Robot API's error envelope."""
    body = {"status": status, "code": code, "message": code.lower()}
    body.update(extra)
    return status, {"error": body}


def rdns_list(entries: Dict[str, str]) -> Tuple[int, Any]:
    return 200, [{"rdns": {"ip": ip, "ptr": ptr}} for ip, ptr in entries.items()]


def run_module(module: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: Dict[str, Any],
               answers: List[Tuple[int, Any]]) -> Tuple[Dict[str, Any], Script, List[float]]:
    """Run module.main() with args against the scripted answers; every answer must be used."""
    script = Script(answers)
    slept: List[float] = []
    monkeypatch.setattr(robot_utils, "make_urllib_transport", lambda validate_certs=True: script)
    monkeypatch.setattr(robot_utils.time, "sleep", slept.append)
    full = dict(robot_user="robot", robot_password="s3cret", robot_url=URL)
    full.update(args)
    with patch_module_args(full):
        with pytest.raises(SystemExit):
            module.main()
    result = json.loads(capsys.readouterr().out)
    assert not script.answers, "scripted answers left unused"
    return result, script, slept
