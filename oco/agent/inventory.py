"""What the agent tells the server about its computer."""

from __future__ import annotations

import platform
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from oco import __version__


def networks() -> list[dict[str, str]]:
    """Each interface's IPv4/IPv6 addresses with its MAC (as OCO agents report them)."""
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


def hello_data() -> dict[str, Any]:
    return {
        "agent_version": __version__,
        "networks": networks(),
        "uptime": int(time.time() - psutil.boot_time()),
        "services": [],
    }


def os_release() -> tuple[str, str]:
    """The OS name and version: /etc/os-release on Linux, platform data elsewhere."""
    if platform.system() == "Linux":
        try:
            fields = dict(
                line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
            )
            return fields.get("NAME", "Linux").strip('"'), fields.get("VERSION_ID", "").strip('"')
        except OSError:
            pass
    if platform.system() == "Darwin":
        return "macOS", platform.mac_ver()[0]
    return platform.system(), platform.version()


def inventory(logged_in: list[str]) -> dict[str, Any]:
    name, version = os_release()
    return {
        "hostname": socket.gethostname(),
        "os": name,
        "os_version": version,
        "architecture": platform.machine(),
        "kernel_version": platform.release(),
        "cpu": platform.processor() or platform.machine(),
        "ram": psutil.virtual_memory().total,
        "agent_version": __version__,
        "networks": networks(),
        "logins": [
            {"username": user, "console": "", "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")}
            for user in logged_in
        ],
        "software": [],
        "uptime": int(time.time() - psutil.boot_time()),
    }
