"""Plugin config sections: declared with gateway_register_config, validated with the file and key named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from odmcp import hookimpl
from odmcp.app import Gateway
from odmcp.cli import main
from odmcp.config import Secret, masked
from odmcp.errors import ConfigError

STORE_TOML = '[[stores]]\nname = "main"\nstore_id = "1001"\napi_key = "k"\n\n'


def _config(tmp_path: Path, section: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(STORE_TOML + section, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("section", "key", "expected"),
    [
        (
            '[folder_guard]\nprotected_folders = "x"\n',
            "folder_guard.protected_folders",
            "expected array, got str",
        ),
        (
            '[folder_guard]\nprotected_folders = [3, "x"]\n',
            "folder_guard.protected_folders[1]",
            "expected int, got str",
        ),
        (
            "[folder_guard]\nprotected_folder = [3]\n",
            "folder_guard.protected_folder",
            "unknown key; did you mean protected_folders?",
        ),
    ],
    ids=["not-a-list", "not-an-int", "unknown-field"],
)
def test_invalid_folder_guard_section_names_file_and_key(
    tmp_path: Path, section: str, key: str, expected: str
) -> None:
    path = _config(tmp_path, section)
    with pytest.raises(ConfigError) as excinfo:
        Gateway.from_config(str(path), env={})
    message = str(excinfo.value)
    assert message.startswith(f"{path}: key {key}: "), message
    assert expected in message


def test_config_check_prints_the_error_as_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ORDERDESK_STORE_ID", raising=False)
    monkeypatch.delenv("ORDERDESK_API_KEY", raising=False)
    path = _config(tmp_path, '[folder_guard]\nprotected_folders = "x"\n')
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"mcp-gateway: error: {path}: key folder_guard.protected_folders: expected array, got str\n"


def test_valid_section_is_available_to_the_plugin(tmp_path: Path) -> None:
    gw = Gateway.from_config(str(_config(tmp_path, "[folder_guard]\nprotected_folders = [3, 4]\n")), env={})
    assert gw.config.section("folder_guard").protected_folders == [3, 4]


def test_a_misspelled_section_lists_the_known_ones(tmp_path: Path) -> None:
    path = _config(tmp_path, "[folder_gaurd]\nprotected_folders = [3]\n")
    with pytest.raises(
        ConfigError, match=r"unknown section \[folder_gaurd\]; known sections: .*folder_guard"
    ):
        Gateway.from_config(str(path), env={})


class LimitSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_items: int = 10
    label: str = "default"
    api_key: Secret | None = None


class LimitPlugin:
    @hookimpl
    def gateway_register_config(self, register: Any) -> None:
        register("limit_plugin", LimitSettings)


def test_a_test_plugin_section_through_the_kit(gateway_factory: Any) -> None:
    gw = gateway_factory(plugins=[LimitPlugin()], overrides={"limit_plugin": {"max_items": 5}})
    settings = gw.config.section("limit_plugin")
    assert (settings.max_items, settings.label) == (5, "default")
    assert gateway_factory(plugins=[LimitPlugin()]).config.section("limit_plugin").max_items == 10


def test_a_test_plugin_section_error(gateway_factory: Any) -> None:
    with pytest.raises(ConfigError, match=r"key limit_plugin\.max_items: expected int, got str"):
        gateway_factory(plugins=[LimitPlugin()], overrides={"limit_plugin": {"max_items": "lots"}})


def test_secrets_in_plugin_sections_come_from_the_environment(tmp_path: Path) -> None:
    path = _config(tmp_path, '[limit_plugin]\nlabel = {"$env" = "LIMIT_LABEL"}\n')
    gw = Gateway.from_config(str(path), env={"LIMIT_LABEL": "from-env"}, extra_plugins=[LimitPlugin()])
    assert gw.config.section("limit_plugin").label == "from-env"


def test_a_secret_field_in_a_plugin_section_is_masked(tmp_path: Path) -> None:
    path = _config(tmp_path, '[limit_plugin]\napi_key = {"$env" = "LIMIT_KEY"}\n')
    gw = Gateway.from_config(str(path), env={"LIMIT_KEY": "s3cret"}, extra_plugins=[LimitPlugin()])
    key = gw.config.section("limit_plugin").api_key
    assert key.reveal() == "s3cret" and "s3cret" not in (str(key) + repr(key))
    assert "s3cret" not in str(masked(gw.config))


def test_a_disabled_plugins_section_may_stay_in_the_file(tmp_path: Path) -> None:
    path = _config(tmp_path, '[folder_guard]\nprotected_folders = "not even valid"\n')
    path.write_text('[gateway]\ndisabled_plugins = ["folder_guard"]\n\n' + path.read_text(), encoding="utf-8")
    gw = Gateway.from_config(str(path), env={})
    assert not gw.pm.has_plugin("folder_guard")
