"""A real S3-compatible server for the object-store depot's tests: moto's, as its own process on 127.0.0.1.

Every request it serves is recorded (moto's recorder: method, URL, headers) so a test can see what reached
the store, e.g. the `Range` of a resumed download. Credentials are made up: moto accepts any.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live import free_port

STARTUP_TIMEOUT_S = 120
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "oco-test-access-key",
    "AWS_SECRET_ACCESS_KEY": "oco-test-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never a shared ~/.aws of this machine, never an instance metadata lookup.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def need_moto() -> None:
    """Skip, saying why, when moto's server cannot be imported (the `test` extra installs it)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed: no S3-compatible server")
    pytest.importorskip("boto3", reason="boto3 (the s3 extra) is not installed")


@dataclass
class S3Server:
    url: str
    process: subprocess.Popen[bytes]
    recording: Path
    log: Path

    def requests(self) -> list[dict[str, Any]]:
        """The requests the server served so far, oldest first (method, url, headers).

        Read as a sequence of JSON documents, not of lines: moto's recorder writes a record and its newline
        in two writes, so the records of concurrent requests (a multipart upload's parts) can follow each
        other on one line."""
        if not self.recording.exists():
            return []
        text = self.recording.read_text(encoding="utf-8")
        decoder = json.JSONDecoder()
        records: list[dict[str, Any]] = []
        position = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position == len(text):
                return records
            record, position = decoder.raw_decode(text, position)
            records.append(record)

    def gets_of(self, key: str) -> list[dict[str, Any]]:
        """The GETs of one object (its key in the URL's path), with their headers."""
        return [r for r in self.requests() if r["method"] == "GET" and f"/{key}" in r["url"].split("?")[0]]

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        ).client("s3", endpoint_url=self.url, config=Config(s3={"addressing_style": "path"}))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_s3_server(workdir: Path) -> S3Server:
    """Start `python -m moto.server` on a free 127.0.0.1 port, recording requests; wait until it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    recording = workdir / "s3-requests.jsonl"
    log = workdir / "s3-server.log"
    env = {
        **os.environ,
        **CREDENTIALS,
        "MOTO_ENABLE_RECORDING": "true",
        "MOTO_RECORDER_FILEPATH": str(recording),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = S3Server(url=f"http://127.0.0.1:{port}", process=process, recording=recording, log=log)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log.read_text()}")
        try:
            httpx.get(f"{server.url}/moto-api/", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"moto server did not start in {STARTUP_TIMEOUT_S} s: {log.read_text()}")
