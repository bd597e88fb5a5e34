"""What the agent tells the server about its computer (`oco.agent.hello` and `oco.agent.update`)."""

from __future__ import annotations

import platform
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from oco import __version__

OS_RELEASE = Path("/etc/os-release")
CPUINFO = Path("/proc/cpuinfo")
LOGIN_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def networks() -> list[dict[str, str]]:
    """Each interface's IPv4/IPv6 addresses with its MAC, as OCO agents report them."""
    result = []
    for interface, addresses in psutil.net_if_addrs().items():
        mac = next((a.address for a in addresses if a.family == psutil.AF_LINK), "")
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                result.append(
                    {
                        "addr": address.address.split("%")[0],
                        "netmask": address.netmask or "",
                        "broadcast": address.broadcast or "",
                        "mac": mac,
                        "interface": interface,
                    }
                )
    return result


def uptime_seconds() -> int:
    """Seconds since the computer booted."""
    return int(time.time() - psutil.boot_time())


def hello_data() -> dict[str, Any]:
    """The `data` of `oco.agent.hello`."""
    return {
        "agent_version": __version__,
        "networks": networks(),
        "uptime": uptime_seconds(),
        "services": [],
    }


def os_release() -> tuple[str, str]:
    """The OS name and version: /etc/os-release on Linux, platform data elsewhere."""
    system = platform.system()
    if system == "Linux":
        fields = _key_values(OS_RELEASE, "=")
        if fields:
            return fields.get("NAME", "Linux").strip('"'), fields.get("VERSION_ID", "").strip('"')
    if system == "Darwin":
        return "macOS", platform.mac_ver()[0]
    return system, platform.version()


def cpu_model() -> str:
    """The processor's model name where the platform says it, else the architecture."""
    model = _key_values(CPUINFO, ":").get("model name", "") if platform.system() == "Linux" else ""
    return model or platform.processor() or platform.machine()


def logins() -> list[dict[str, str]]:
    """The users logged in now (psutil.users()): name, terminal and since when (UTC)."""
    return [
        {
            "username": user.name,
            "console": user.terminal or "",
            "timestamp": datetime.fromtimestamp(user.started, UTC).strftime(LOGIN_TIME_FORMAT),
        }
        for user in psutil.users()
    ]


def inventory(hostname: str) -> dict[str, Any]:
    """The `data` of `oco.agent.update`: the full inventory the server asked for with `update: 1`."""
    name, version = os_release()
    return {
        "hostname": hostname,
        "os": name,
        "os_version": version,
        "architecture": platform.machine(),
        "kernel_version": platform.release(),
        "cpu": cpu_model(),
        "ram": psutil.virtual_memory().total,
        "agent_version": __version__,
        "networks": networks(),
        "logins": logins(),
        "software": [],
        "uptime": uptime_seconds(),
        "time_zone": time_zone(),
    }


LOCALTIME = Path("/etc/localtime")
ZONEINFO_MARK = "zoneinfo/"


def time_zone() -> str:
    """The computer's time zone for the server's maintenance windows: its IANA name when the system says
    (`/etc/localtime` links into the zoneinfo tree, or `TZ`), else its current UTC offset (+01:00)."""
    import os

    named = os.environ.get("TZ", "").lstrip(":")
    if named and "/" in named and not named.startswith("/"):
        return named
    try:
        target = str(LOCALTIME.resolve())
    except OSError:
        target = ""
    if ZONEINFO_MARK in target:
        return target.split(ZONEINFO_MARK, 1)[1]
    offset = datetime.now().astimezone().utcoffset()
    minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _key_values(path: Path, separator: str) -> dict[str, str]:
    """`key<separator>value` lines of a text file (first occurrence wins); empty when unreadable."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    result: dict[str, str] = {}
    for line in lines:
        key, found, value = line.partition(separator)
        if found:
            result.setdefault(key.strip(), value.strip())
    return result
