"""Configuration: TOML + environment, $env secrets, errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from odmcp.app import Gateway
from odmcp.config import Secret, masked
from odmcp.config import load_config as host_load_config
from odmcp.errors import ConfigError
from odmcp_orderdesk.settings import OrderDeskStore

ENV = {"ORDERDESK_STORE_ID": "42", "ORDERDESK_API_KEY": "key-from-env"}


def load_config(path: str | None, env: dict[str, str], sections: Any = None, overrides: Any = None) -> Any:
    """The host's loader with the OrderDesk plugin's store type registered, as the gateway does it."""
    return host_load_config(path, env, {"stores": OrderDeskStore, **(sections or {})}, overrides)


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "gw.toml"
    p.write_text(text)
    return str(p)


def test_defaults_and_single_store_env_vars_define_the_default_store() -> None:
    cfg = load_config(None, ENV)
    store = cfg.default_store
    assert (store.name, store.store_id, store.base_url) == (
        "default",
        "42",
        "https://app.orderdesk.me/api/v2",
    )
    assert store.api_key.reveal() == "key-from-env"
    assert cfg.cache.backend == "memory" and cfg.gateway.tool_names == "underscore"
    assert cfg.mutations.attempts == 5 and cfg.mutations.backoff == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[cache]\nbackend = "memory"\n[gateway]\nread_only = false\n')
    env = {
        **ENV,
        "GATEWAY_CACHE": "redis",
        "GATEWAY_REDIS_URL": "redis://h:1/2",
        "GATEWAY_READ_ONLY": "yes",
        "GATEWAY_TOOL_NAMES": "dotted",
        "GATEWAY_AUDIT_LOG": "-",
        "GATEWAY_HTTP_TOKEN": "t0k",
        "ORDERDESK_BASE_URL": "http://127.0.0.1:9/api/v2",
    }
    cfg = load_config(path, env)
    assert cfg.cache.backend == "redis" and cfg.cache.redis_url == "redis://h:1/2"
    assert cfg.gateway.read_only is True and cfg.gateway.tool_names == "dotted" and cfg.audit.path == "-"
    assert cfg.http.token == Secret("t0k") and cfg.default_store.base_url == "http://127.0.0.1:9/api/v2"


def test_gateway_config_env_var_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[gateway]\nname = "from-file"\n')
    assert load_config(None, {**ENV, "GATEWAY_CONFIG": path}).gateway.name == "from-file"


def test_secrets_come_from_env_and_never_show(tmp_path: Path) -> None:
    path = write(tmp_path, '[[stores]]\nname = "eu"\nstore_id = "7"\napi_key = { "$env" = "EU_KEY" }\n')
    cfg = load_config(path, {"EU_KEY": "s3cr3t-value"})
    key = cfg.default_store.api_key
    assert key.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(key) and "s3cr3t" not in str(masked(cfg))
    assert masked(cfg)["stores"][0]["api_key"] == "***"


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ('[cache]\nop_timeout = "fast"\n', ENV, "key cache.op_timeout: expected float, got str"),
        ("[mutations]\nattempts = 0\n", ENV, "key mutations.attempts: expected an integer >= 1"),
        ("[cache]\nflight_lease = 0\n", ENV, "key cache.flight_lease: expected seconds > 0"),
        (
            '[[stores]]\nname = "a"\nstore_id = "1"\napi_key = "k"\nrate_limit = { fallback_share = 1.5 }\n',
            {},
            "key stores[0].rate_limit: fallback_share must be > 0 and <= 1",
        ),
        (
            '[[stores]]\nname = "a"\nstore_id = "1"\napi_key = "k"\nrate_limit = { capacity = 0 }\n',
            {},
            "key stores[0].rate_limit: capacity must be >= 1",
        ),
        (
            '[[stores]]\nname = "a"\nstore_id = "1"\n',
            {},
            "key stores[0]: object missing required field api_key",
        ),
        (
            '[[stores]]\nname = "a"\nstore_id = "1"\napi_key = { "$env" = "NOPE" }\n',
            {},
            "key stores[0].api_key: environment variable NOPE is not set",
        ),
        ("[nonsense]\nx = 1\n", ENV, "unknown section [nonsense]"),
        (
            '[gateway]\ntool_names = "dots"\n',
            ENV,
            "key gateway.tool_names: invalid enum value 'dots'; expected one of 'underscore', 'dotted'",
        ),
        ("not toml = = 1", ENV, "invalid TOML"),
    ],
)
def test_errors_name_the_file_the_key_and_what_was_expected(
    tmp_path: Path, toml: str, env: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env)
    assert str(info.value).startswith(path), str(info.value)
    assert expected in str(info.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_READ_ONLY='maybe'"):
        load_config(None, {**ENV, "GATEWAY_READ_ONLY": "maybe"})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "absent.toml"), ENV)


def test_unknown_cache_backend_fails_at_start_up_listing_the_available_ones() -> None:
    with pytest.raises(ConfigError) as info:
        Gateway.from_config(None, env={**ENV, "GATEWAY_CACHE": "memcached"})
    assert "unknown cache backend 'memcached'; available: memory, redis" in str(info.value)


def test_plugin_sections_are_validated_by_the_plugin(tmp_path: Path) -> None:
    path = write(tmp_path, "[orderdesk]\nrequest_timeout = 2.5\n")
    gw = Gateway.from_config(path, env=ENV)
    assert gw.config.section("orderdesk").request_timeout == 2.5
    bad = write(tmp_path, '[orderdesk]\nrequest_timeout = "slow"\n')
    with pytest.raises(ConfigError, match="key orderdesk.request_timeout: expected float, got str"):
        Gateway.from_config(bad, env=ENV)
    unknown = write(tmp_path, "[orderdesk]\nretries = 3\n")
    with pytest.raises(ConfigError, match="orderdesk"):
        Gateway.from_config(unknown, env=ENV)


def test_token_grants_must_name_configured_stores(tmp_path: Path) -> None:
    path = write(tmp_path, '[[http.tokens]]\nname = "t"\ntoken = "x"\nstores = ["nowhere"]\n')
    with pytest.raises(ConfigError, match=r"key http.tokens\[0\].stores: unknown store 'nowhere'"):
        load_config(path, ENV)


def test_two_default_stores_are_refused(tmp_path: Path) -> None:
    store = '[[stores]]\nname = "{n}"\nstore_id = "1"\napi_key = "k"\ndefault = true\n'
    path = write(tmp_path, store.format(n="a") + store.format(n="b"))
    with pytest.raises(ConfigError, match="more than one store has default = true"):
        load_config(path, {})


@pytest.mark.parametrize("name", ["desktop.toml", "replicas.toml"])
def test_shipped_example_configs_are_valid(name: str) -> None:
    env = {
        k: "x-value"
        for k in (
            "ORDERDESK_STORE_ID",
            "ORDERDESK_API_KEY",
            "GATEWAY_STATE_KEY",
            "GATEWAY_TOKEN_OPS",
            "GATEWAY_TOKEN_EU_RO",
            "ORDERDESK_US_STORE_ID",
            "ORDERDESK_US_API_KEY",
            "ORDERDESK_EU_STORE_ID",
            "ORDERDESK_EU_API_KEY",
        )
    }
    gw = Gateway.from_config(str(Path(__file__).parents[2] / "examples" / name), env=env)
    assert gw.config.stores and gw.config.default_store.api_key.reveal() == "x-value"


def test_claude_desktop_snippet_is_valid_json_and_the_readme_shows_it() -> None:
    import json
    import re

    root = Path(__file__).parents[2]
    text = (root / "examples" / "claude_desktop_config.json").read_text()
    servers = json.loads(text)["mcpServers"]
    assert servers["orderdesk"]["args"][0] == "serve" and servers["orderdesk-sandbox"]["args"] == [
        "serve",
        "--sandbox",
    ]
    assert {s["command"] for s in servers.values()} == {"/path/to/.venv/bin/mcp-gateway"}
    readme = (root / "README.md").read_text()
    section = readme[readme.index("## Claude Desktop") :]
    assert re.search(r"```json\n(.*?)```", section, re.S).group(1) == text  # type: ignore[union-attr]


def test_cache_ttls_are_a_table_keyed_by_object_kind(tmp_path: Path) -> None:
    path = write(tmp_path, "[cache.ttl]\norder = 60\nlist = 5\npage = 1.5\n")
    cache = load_config(path, ENV).cache
    assert cache.ttl_for("order") == 60 and cache.ttl_list == 5 and cache.ttl_for("page") == 1.5
    # kinds not named: the plugin's default if it gives one, else 30 s
    assert cache.ttl_for("store", 300.0) == 300.0 and cache.ttl_for("inventory_item") == 30.0
    with pytest.raises(ConfigError, match="ttl.order"):
        load_config(write(tmp_path, "[cache.ttl]\norder = -1\n"), ENV)


def test_the_host_knows_no_store_fields_until_a_store_plugin_registers_them(tmp_path: Path) -> None:
    # without a store plugin a [[stores]] entry has only the host's fields, and no variable defines one
    bare = host_load_config(write(tmp_path, '[[stores]]\nname = "s"\nstore_id = "1"\n'), ENV)
    assert bare.stores[0].store_id == "1" and not hasattr(bare.stores[0], "api_key")
    assert bare.store_env == [] and len(host_load_config(None, ENV).stores) == 0
    with pytest.raises(ConfigError, match="api_key"):
        host_load_config(write(tmp_path, '[[stores]]\nname = "s"\nstore_id = "1"\napi_key = "k"\n'), {})
    # with it, ORDERDESK_* define the default store and the messages name them
    cfg = load_config(None, ENV)
    assert cfg.default_store.api_key.reveal() == "key-from-env"
    assert cfg.store_env == ["ORDERDESK_STORE_ID", "ORDERDESK_API_KEY"]  # the base URL has a default
    with pytest.raises(ConfigError, match="set ORDERDESK_STORE_ID and ORDERDESK_API_KEY"):
        _ = load_config(None, {}).default_store
