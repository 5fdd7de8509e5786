# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converge a role's directories and files in one pass (the managed_files module).

A converged host costs one module run for the whole set instead of two per file (the template and copy
actions stat the file, then run the file module for owner and mode). Every decision is made before
anything is written: unknown owners, a relative path or a file whose directory is neither present nor in
the set fail the run and nothing is touched. Files are written atomically (a temporary file in the same
directory, owner and mode set, validated, then renamed over the old one), so a reader never sees half a
file and a file that fails its validation never replaces the good one.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Outcome:
    """What a run did (or would do in check mode)."""

    changed_paths: list = field(default_factory=list)
    changed_tags: list = field(default_factory=list)
    diffs: list = field(default_factory=list)

    def record(self, path: str, tag: str, diff: dict) -> None:
        self.changed_paths.append(path)
        if tag and tag not in self.changed_tags:
            self.changed_tags.append(tag)
        self.diffs.append(diff)


class ManagedFilesError(Exception):
    """Bad input or a failed write; the message says what to change.

    ``outcome`` holds what was changed before the failure (nothing when the input was refused).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.outcome = Outcome()


@dataclass
class Ownership:
    """Wanted owner, group and mode; None keeps what the path has (or the default for a new one)."""

    uid: Optional[int]
    gid: Optional[int]
    mode: Optional[int]
    # Check mode only: owners or groups the host does not have yet (a package that
    # would create them is not installed); the path counts as one that would change.
    missing: tuple = ()


def parse_mode(mode, where: str) -> Optional[int]:
    """An octal mode string ("0644", "644") or None."""
    if mode is None or mode == "":
        return None
    text = str(mode)
    try:
        value = int(text, 8)
    except ValueError:
        raise ManagedFilesError('%s: mode %r is not an octal mode such as "0644"' % (where, text)) from None
    if value < 0 or value > 0o7777:
        raise ManagedFilesError('%s: mode %r is out of range (0000 to 7777)' % (where, text))
    return value


def lookup_id(kind: str, name, where: str, check_mode: bool, missing: list) -> Optional[int]:
    """The number of a user or group given by name or number; None when not given.

    In check mode a name the host does not know yet goes to ``missing`` instead of failing.
    """
    if name in (None, ""):
        return None
    if str(name).isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
    except KeyError:
        if not check_mode:
            raise ManagedFilesError("%s: no %s %r on this host: create it first or name another %s"
                                    % (where, kind, name, "owner" if kind == "user" else kind)) from None
        missing.append("%s %s (not on the host yet)" % ("owner" if kind == "user" else kind, name))
        return None


def resolve_ownership(entry: dict, where: str, check_mode: bool = False) -> Ownership:
    """Look the owner and group up by name (or number) before anything is written."""
    missing: list = []
    uid = lookup_id("user", entry.get("owner"), where, check_mode, missing)
    gid = lookup_id("group", entry.get("group"), where, check_mode, missing)
    return Ownership(uid, gid, parse_mode(entry.get("mode"), where), tuple(missing))


def pending(want: Ownership) -> dict:
    return {"pending": ("", "; ".join(want.missing))} if want.missing else {}


def attribute_changes(st: Optional[os.stat_result], want: Ownership) -> dict:
    """Owner, group and mode that differ from what is wanted: {name: (before, after)}."""
    changes = pending(want)
    if st is None:
        return changes
    if want.uid is not None and st.st_uid != want.uid:
        changes["owner"] = (st.st_uid, want.uid)
    if want.gid is not None and st.st_gid != want.gid:
        changes["group"] = (st.st_gid, want.gid)
    if want.mode is not None and stat.S_IMODE(st.st_mode) != want.mode:
        changes["mode"] = ("%04o" % stat.S_IMODE(st.st_mode), "%04o" % want.mode)
    return changes


def apply_attributes(path: str, want: Ownership) -> None:
    os.chown(path, -1 if want.uid is None else want.uid, -1 if want.gid is None else want.gid)
    if want.mode is not None:
        os.chmod(path, want.mode)


def describe(changes: dict, side: int) -> str:
    """One line per changed attribute, its value before (side 0) or after (side 1)."""
    return "".join("%s: %s\n" % (name, values[side]) for name, values in sorted(changes.items()))


def read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def validate_input(directories: list, files: list, check_mode: bool = False) -> tuple:
    """Check every entry and resolve owners; raise before anything is touched.

    In check mode an earlier task of the run may not have created a user, a group or a parent directory
    yet (nothing was installed): those paths are reported as changes instead of refused.
    """
    wanted_dirs, wanted_files, seen = [], [], set()
    for entry in directories:
        path = entry["path"]
        where = "directory %s" % path
        if not os.path.isabs(path):
            raise ManagedFilesError("%s: the path must be absolute" % where)
        wanted_dirs.append((os.path.normpath(path), resolve_ownership(entry, where, check_mode)))
    dir_paths = {pair[0] for pair in wanted_dirs}
    for entry in files:
        dest = entry["dest"]
        where = "file %s" % dest
        if not os.path.isabs(dest):
            raise ManagedFilesError("%s: the path must be absolute" % where)
        dest = os.path.normpath(dest)
        if dest in seen:
            raise ManagedFilesError("%s: named twice; a file belongs to one entry" % where)
        seen.add(dest)
        validate = entry.get("validate")
        if validate and "%s" not in validate:
            raise ManagedFilesError("%s: validate %r must contain %%s (the file to check)" % (where, validate))
        parent = os.path.dirname(dest)
        if parent not in dir_paths and not os.path.isdir(parent) and not check_mode:
            raise ManagedFilesError("%s: directory %s does not exist: add it to directories" % (where, parent))
        wanted_files.append((dest, entry, resolve_ownership(entry, where, check_mode)))
    return wanted_dirs, wanted_files


def existing(path: str, is_kind: Callable, what: str) -> Optional[os.stat_result]:
    """The path's stat, None when absent; something of another kind in the way fails."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not is_kind(st.st_mode):
        raise ManagedFilesError("%s: something that is not a %s is in the way" % (path, what))
    return st


def converge_directory(path: str, want: Ownership, check_mode: bool, outcome: Outcome) -> None:
    st = existing(path, stat.S_ISDIR, "directory")
    if st is None:
        outcome.record(path, "", {"before_header": path, "after_header": path,
                                  "before": "(absent)\n", "after": "directory\n"})
        if not check_mode:
            os.makedirs(path, mode=0o755, exist_ok=True)
            apply_attributes(path, want)
        return
    changes = attribute_changes(st, want)
    if changes:
        outcome.record(path, "", {"before_header": path, "after_header": path,
                                  "before": describe(changes, 0), "after": describe(changes, 1)})
        if not check_mode:
            apply_attributes(path, want)


def run_validation(command: str, path: str, runner: Callable) -> None:
    argv = shlex.split(command.replace("%s", shlex.quote(path)))
    rc, out, err = runner(argv)
    if rc != 0:
        raise ManagedFilesError("validation failed: %s exited %d: %s" % (command, rc, (err or out).strip()))


def run_command(argv: list) -> tuple:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def write_atomically(dest: str, content: bytes, want: Ownership, old_st, validate: str, runner: Callable) -> None:
    """Temporary file beside dest, attributes set, validated, renamed over dest."""
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(dest), dir=os.path.dirname(dest))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        # A new file gets 0644 root-owned defaults unless told; an existing one keeps its attributes.
        keep = Ownership(old_st.st_uid if old_st else 0, old_st.st_gid if old_st else 0,
                         stat.S_IMODE(old_st.st_mode) if old_st else 0o644)
        apply_attributes(tmp, Ownership(keep.uid if want.uid is None else want.uid,
                                        keep.gid if want.gid is None else want.gid,
                                        keep.mode if want.mode is None else want.mode))
        if validate:
            run_validation(validate, tmp, runner)
        os.rename(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_diff(dest: str, before: Optional[bytes], after: bytes, secret: bool, attributes: dict) -> dict:
    """Content before and after (a secret's content is never shown), then the attributes that change."""
    if secret:
        old = "(absent)\n" if before is None else "(secret content)\n"
        new = "(secret content%s)\n" % (", changed" if before is not None and before != after else "")
    else:
        old = "" if before is None else before.decode("utf-8", "replace")
        new = after.decode("utf-8", "replace")
    return {"before_header": dest, "after_header": dest,
            "before": old + describe(attributes, 0), "after": new + describe(attributes, 1)}


def converge_file(dest: str, entry: dict, want: Ownership, check_mode: bool, outcome: Outcome,
                  runner: Callable = run_command) -> None:
    content = entry["content"].encode("utf-8")
    st = existing(dest, stat.S_ISREG, "regular file")
    before = read_bytes(dest) if st is not None else None
    attributes = attribute_changes(st, want)
    if before == content and not attributes:
        return
    if not check_mode:
        if before == content:
            apply_attributes(dest, want)
        else:
            try:
                write_atomically(dest, content, want, st, entry.get("validate") or "", runner)
            except (OSError, ManagedFilesError) as exc:
                raise ManagedFilesError("file %s: %s; the file was left as it was" % (dest, exc)) from None
    outcome.record(dest, entry.get("tag") or "", file_diff(dest, before, content, bool(entry.get("secret")),
                                                           attributes))


def converge(directories: list, files: list, check_mode: bool, runner: Callable = run_command) -> Outcome:
    """Directories first (in the order given), then files; stops at the first failure."""
    wanted_dirs, wanted_files = validate_input(directories, files, check_mode)
    outcome = Outcome()
    for path, want in wanted_dirs:
        try:
            converge_directory(path, want, check_mode, outcome)
        except (OSError, ManagedFilesError) as exc:
            error = ManagedFilesError("directory %s: %s" % (path, exc) if isinstance(exc, OSError) else str(exc))
            error.outcome = outcome
            raise error from None
    for dest, entry, want in wanted_files:
        if check_mode and not os.path.isdir(os.path.dirname(dest)):
            outcome.record(dest, entry.get("tag") or "",
                           file_diff(dest, None, entry["content"].encode("utf-8"), bool(entry.get("secret")),
                                     pending(want)))
            continue
        try:
            converge_file(dest, entry, want, check_mode, outcome, runner)
        except ManagedFilesError as exc:
            exc.outcome = outcome
            raise
    return outcome
