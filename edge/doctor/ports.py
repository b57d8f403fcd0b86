"""Whether a serial port can be opened by this process, and if not, why, before any driver
touches it: missing device, permissions, another program holding it.

A running controller keeps its ports open. Lock boards and readers are opened without a lock,
so a second opener would steal bytes from it; the doctor therefore looks for other holders
first (``/proc/*/fd``), and also opens with pyserial's exclusive lock, which fails against
pymodbus (temperature sensors), which takes that lock.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

import serial

from edge.doctor.report import Result

UDEV_HINT = "ls -l /dev/serial/by-id; stable names come from deploy/99-edge.rules"
IN_USE_NEXT = (
    "stop the controller (sudo systemctl stop edge) and run the doctor again, or read this "
    "device's health on the operator status page"
)


@dataclass(frozen=True)
class PortProblem:
    result: Result
    detail: str
    next_step: str


def check_serial_port(path: str) -> PortProblem | None:
    """None when the port opens (and was closed again at once); else what is wrong."""
    if not os.path.exists(path):  # follows links: a dangling udev name counts as missing
        return PortProblem(
            Result.FAIL,
            f"{path} does not exist (adapter unplugged, or another name)",
            f"plug the adapter in and find its name: {UDEV_HINT}",
        )
    holders = port_holders(path)
    if holders:
        return in_use(path, ", ".join(holders))
    try:
        # Opening writes nothing; the exclusive lock fails while pymodbus holds the port.
        port = serial.Serial(path, exclusive=True, timeout=0)
    except serial.SerialException as exc:
        return _classify(path, exc)
    except (OSError, ValueError) as exc:
        return PortProblem(Result.FAIL, f"cannot open {path}: {exc}", UDEV_HINT)
    port.close()
    return None


def in_use(path: str, by: str = "another program") -> PortProblem:
    return PortProblem(
        Result.SKIPPED, f"{path} in use by {by} (is `edge run` running?)", IN_USE_NEXT
    )


def _classify(path: str, exc: serial.SerialException) -> PortProblem:
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return permission_denied(path)
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
        return in_use(path)
    if code in (errno.ENOENT, errno.ENXIO, errno.ENODEV):
        return PortProblem(
            Result.FAIL,
            f"{path} is listed but no device answers behind it (unplugged?)",
            f"replug the adapter; {UDEV_HINT}",
        )
    return PortProblem(
        Result.FAIL,
        f"cannot open {path}: {exc}",
        f"check that {path} is a serial port; {UDEV_HINT}",
    )


def permission_denied(path: str, usual_group: str = "dialout") -> PortProblem:
    """Names the group that owns the device and the command that lets this user in."""
    user = _user_name()
    try:
        group = grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        group = usual_group
    if group == "root":
        step = (
            f"{path} belongs to group root: give it to group {usual_group} with a udev rule "
            f'(see deploy/99-edge.rules: GROUP="{usual_group}", MODE="0660"), '
            f"replug, and make sure the user is in it: sudo usermod -aG {usual_group} {user}"
        )
    elif _member_of(user, group):
        step = (
            f"the user {user} is in group {group} but this session is not: log in again, "
            "or restart the service (sudo systemctl restart edge)"
        )
    else:
        step = (
            f"the user {user} is not in group {group}: sudo usermod -aG {group} {user} "
            "(then log in again, or restart the service)"
        )
    return PortProblem(Result.FAIL, f"permission denied opening {path}", step)


def port_holders(path: str) -> list[str]:
    """Other processes that have ``path`` open, as ``PID 123 (name)``; only those this user may
    inspect (all of them for root)."""
    target = os.path.realpath(path)
    me = os.getpid()
    found: list[str] = []
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        fd_dir = f"/proc/{entry.name}/fd"
        try:
            links = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in links:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    found.append(f"PID {entry.name} ({_command(entry.name)})")
                    break
            except OSError:
                continue
    return found


def _command(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
    except OSError:
        return "?"


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _member_of(user: str, group: str) -> bool:
    try:
        entry = grp.getgrnam(group)
        primary = pwd.getpwnam(user).pw_gid
    except KeyError:
        return False
    return user in entry.gr_mem or primary == entry.gr_gid
