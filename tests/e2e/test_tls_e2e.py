"""TLS, end to end: `oco server --tls-cert/--tls-key` and real `oco agent` processes enrolled with https.

Certificates are throw-away ones for 127.0.0.1 (tests/certificates.py). An agent trusts the server by a
certificate pinned at enrollment (trust on first use, or a fingerprint given), or by a CA file; a server
presenting another certificate is refused before anything is sent.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from oco.agent.config import load_config, save_config
from oco.services import computers
from oco.services.runtime import Runtime
from tests.certificates import Certificate, make_ca, make_server_certificate
from tests.conftest import make_runtime
from tests.live import REGISTRATION_KEY, LiveServer, start_server

NOT_PINNED = "is not the pinned one"


@dataclass
class Site:
    root: Path
    url: str
    rt: Runtime
    ca: Certificate
    servers: list[LiveServer]

    def server(self, certificate: Certificate, *server_args: str) -> LiveServer:
        server = start_server(
            self.root, self.url, server_args=server_args, tls=certificate.pair, self_registration="true"
        )
        self.servers.append(server)
        return server

    def hostnames(self) -> set[str]:
        return {computer.hostname for computer in computers.list_computers(self.rt)}


@pytest.fixture
def site(tmp_path: Path, sqlite_template: Path) -> Iterator[Site]:
    shutil.copy(sqlite_template, tmp_path / "oco.sqlite3")
    url = f"sqlite:///{tmp_path / 'oco.sqlite3'}"
    rt = make_runtime(url, tmp_path)
    ca = make_ca(tmp_path / "pki")
    built = Site(tmp_path, url, rt, ca, [])
    yield built
    for server in built.servers:
        server.stop()
    rt.close()


def enroll(
    site: Site, hostname: str, server_url: str, *options: str
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    base = site.root / "agents" / hostname
    config = base / "agent.toml"
    args = ["--server", server_url, "--registration-key", REGISTRATION_KEY, "--hostname", hostname]
    args += ["--state-dir", str(base / "state"), *options]
    result = subprocess.run(
        [sys.executable, "-m", "oco", "agent", "enroll", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode == 0:
        save_config(config, replace(load_config(config), power_backend="record"))
    return config, result


def check_in(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oco.agent", "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_an_agent_pins_a_self_signed_certificate_on_first_use_and_checks_in(site: Site) -> None:
    certificate = make_server_certificate(site.root / "pki", "self-signed server")
    server = site.server(certificate)
    assert server.url.startswith("https://")

    config, enrolled = enroll(site, "pc-pinned", server.url)

    assert enrolled.returncode == 0, enrolled.stderr
    assert certificate.fingerprint in enrolled.stdout  # printed for the admin to compare
    assert load_config(config).tls_fingerprint == certificate.fingerprint
    ran = check_in(config)
    assert ran.returncode == 0, ran.stderr
    assert "pc-pinned" in site.hostnames()
    assert load_config(config).agent_key  # keys learned over TLS


def test_an_agent_verifies_the_server_with_a_ca_file(site: Site) -> None:
    server = site.server(make_server_certificate(site.root / "pki", "issued server", issuer=site.ca))

    config, enrolled = enroll(site, "pc-ca", server.url, "--ca-file", str(site.ca.cert_file))

    assert enrolled.returncode == 0, enrolled.stderr
    assert load_config(config).tls_fingerprint == ""  # nothing pinned: a renewed certificate still works
    ran = check_in(config)
    assert ran.returncode == 0, ran.stderr
    assert "pc-ca" in site.hostnames()


def test_a_server_with_another_certificate_is_refused_before_anything_is_sent(site: Site) -> None:
    genuine = site.server(make_server_certificate(site.root / "pki", "genuine server", issuer=site.ca))
    impostor = site.server(make_server_certificate(site.root / "pki", "impostor server"))
    pinned, _ = enroll(site, "pc-pinned", genuine.url)
    with_ca, _ = enroll(site, "pc-ca", genuine.url, "--ca-file", str(site.ca.cert_file))
    for config in (pinned, with_ca):
        assert check_in(config).returncode == 0
        save_config(config, replace(load_config(config), server_url=impostor.url))
    before = impostor.log.read_text()

    refused_pin, refused_ca = check_in(pinned), check_in(with_ca)

    assert refused_pin.returncode != 0 and NOT_PINNED in refused_pin.stderr
    assert refused_ca.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused_ca.stderr
    assert impostor.log.read_text() == before  # no request reached the impostor


def test_enrolling_with_a_fingerprint_that_is_not_the_servers_leaves_the_agent_unable_to_connect(
    site: Site,
) -> None:
    server = site.server(make_server_certificate(site.root / "pki", "server"))
    other = make_server_certificate(site.root / "pki", "other")

    config, enrolled = enroll(site, "pc-wrong-pin", server.url, "--tls-fingerprint", other.fingerprint)

    assert enrolled.returncode == 0, enrolled.stderr
    ran = check_in(config)
    assert ran.returncode != 0 and NOT_PINNED in ran.stderr
    assert "pc-wrong-pin" not in site.hostnames()


def test_enrolling_again_keeps_the_pin(site: Site) -> None:
    server = site.server(make_server_certificate(site.root / "pki", "server"))
    config, _ = enroll(site, "pc-again", server.url)
    pin = load_config(config).tls_fingerprint

    again, enrolled = enroll(site, "pc-again", server.url, "--query-interval", "5")

    assert enrolled.returncode == 0, enrolled.stderr
    assert load_config(again).tls_fingerprint == pin
    assert pin not in enrolled.stdout  # nothing was fetched or pinned anew


def test_bad_tls_options_are_refused_at_enrollment(site: Site) -> None:
    _, plain = enroll(site, "pc-plain", "http://127.0.0.1:9", "--ca-file", str(site.ca.cert_file))
    _, garbage = enroll(site, "pc-garbage", "https://127.0.0.1:9", "--tls-fingerprint", "12:34")
    not_a_ca = site.root / "not-a-ca.pem"
    not_a_ca.write_text("nothing\n")
    _, bad_ca = enroll(site, "pc-bad-ca", "https://127.0.0.1:9", "--ca-file", str(not_a_ca))

    assert plain.returncode == 2 and "need an https:// server URL" in plain.stderr
    assert garbage.returncode == 2 and "not a SHA-256 certificate fingerprint" in garbage.stderr
    assert bad_ca.returncode == 2 and "cannot be used" in bad_ca.stderr


def test_several_server_processes_serve_tls(site: Site) -> None:
    server = site.server(
        make_server_certificate(site.root / "pki", "issued", issuer=site.ca), "--workers", "2"
    )
    config, enrolled = enroll(site, "pc-workers", server.url, "--ca-file", str(site.ca.cert_file))
    assert enrolled.returncode == 0, enrolled.stderr

    assert check_in(config).returncode == 0
    answered = httpx.get(f"{server.url}/healthz", verify=ssl.create_default_context(cafile=site.ca.cert_file))
    assert answered.status_code == 200


def test_a_server_refuses_to_start_with_a_key_that_is_not_the_certificates(site: Site) -> None:
    one = make_server_certificate(site.root / "pki", "one")
    two = make_server_certificate(site.root / "pki", "two")

    mismatched = serve(site, "--tls-cert", str(one.cert_file), "--tls-key", str(two.key_file))
    lone = serve(site, "--tls-cert", str(one.cert_file))

    assert mismatched.returncode == 2 and "TLS certificate" in mismatched.stderr
    assert lone.returncode == 2 and "needs both a certificate" in lone.stderr


def serve(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    """`oco server ARGS`, for a server that is expected to stop at once."""
    env = {"PATH": "/usr/bin:/bin", "OCO_DATABASE_URL": site.url, "OCO_DEPOT_PATH": str(site.root / "depot")}
    return subprocess.run(
        [sys.executable, "-m", "oco", "server", *args], env=env, capture_output=True, text=True, timeout=60
    )
