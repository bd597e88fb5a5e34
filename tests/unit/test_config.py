"""Settings from defaults, a TOML file and OCO_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from oco.config import ConfigError, load_settings


def test_defaults_match_the_documentation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCO_CONFIG", raising=False)
    settings = load_settings()
    assert settings.purge_succeeded_job_containers_after == 4 * 3600
    assert settings.purge_failed_job_containers_after == 48 * 3600
    assert settings.wol_shutdown_expiry_seconds == 300
    assert settings.wol_addresses == ["255.255.255.255"] and settings.wol_port == 9
    assert settings.self_registration is False


def test_the_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCO_CONFIG", raising=False)
    config = tmp_path / "oco.toml"
    config.write_text('time_zone = "Europe/Berlin"\nwol_addresses = ["127.0.0.1"]\nwol_port = 4009\n')
    monkeypatch.setenv("OCO_WOL_PORT", "5009")
    monkeypatch.setenv("OCO_TRUSTED_PROXIES", "127.0.0.1, ::1")
    settings = load_settings(config)
    assert settings.time_zone == "Europe/Berlin" and str(settings.zone) == "Europe/Berlin"
    assert settings.wol_addresses == ["127.0.0.1"]
    assert settings.wol_port == 5009
    assert settings.trusted_proxies == ["127.0.0.1", "::1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('time_zone = "Mars/Olympus"', "unknown time zone"),
        ("wol_port = 70000", "wol_port"),
        ('no_such_setting = "x"', "no_such_setting"),
        ("purge_failed_job_containers_after = -1", "purge_failed_job_containers_after"),
        ('download_network_limits = "10.1.0.0/16=x"', "download_network_limits"),
        ('download_network_limits = ["10.1.0.0/16"]', "NETWORK=COUNT"),
        ("max_concurrent_downloads = -1", "max_concurrent_downloads"),
        ("this is not toml", "configuration file"),
        ('depot_url = "https://bucket/prefix"', "depot_url.*expected s3://bucket/prefix"),
        ('depot_redirect = "sometimes"', "depot_redirect"),
        ("depot_url_ttl_seconds = 1", "depot_url_ttl_seconds"),
    ],
)
def test_bad_settings_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.delenv("OCO_CONFIG", raising=False)
    config = tmp_path / "bad.toml"
    config.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_an_object_store_depot_is_configured_by_its_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OCO_CONFIG", raising=False)
    monkeypatch.setenv("OCO_DEPOT_URL", "s3://oco-payloads/site-a")
    monkeypatch.setenv("OCO_DEPOT_REDIRECT", "ours")
    settings = load_settings(data_dir=tmp_path)
    assert settings.depot_url == "s3://oco-payloads/site-a"
    assert settings.depot_redirect == "ours" and settings.depot_url_ttl_seconds == 300
    assert settings.depot_max_bytes == 0 and settings.depot_path == tmp_path / "depot"


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_every_setting_is_documented() -> None:
    from oco.config import Settings

    documented = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`{name}`" not in documented]
    assert missing == []
