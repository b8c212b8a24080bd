"""Sign-in with an identity provider: the gateway as an OAuth 2.1 resource server, over real HTTP.

An aiohttp identity provider on a loopback port signs RS256 and ES256 access tokens with keys made
here, and serves its OpenID configuration and key set. The gateway (``serve_http``) checks them; the
callers are the MCP SDK's own client over Streamable HTTP, and raw requests for the refusals.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.testing import free_port, serve_http

STATIC = "tok-static-0123456789"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class IdP:
    """A tiny identity provider: keys made here, ``/realms/shop`` as the issuer (OpenID discovery only)."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec-1": ec.generate_private_key(ec.SECP256R1()),
        }
        self.published = ["rsa-1", "ec-1"]
        self.jwks_hits = 0
        self.issuer = ""

    def jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            out = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            alg = "RS256"
        else:
            out = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            alg = "ES256"
        return {**out, "kid": kid, "use": "sig", "alg": alg}

    def app(self) -> web.Application:
        async def config(_request: web.Request) -> web.Response:
            return web.json_response({"issuer": self.issuer, "jwks_uri": self.issuer + "/protocol/certs"})

        async def certs(_request: web.Request) -> web.Response:
            self.jwks_hits += 1
            return web.json_response({"keys": [self.jwk(k) for k in self.published]})

        app = web.Application()
        app.router.add_get("/realms/shop/.well-known/openid-configuration", config)
        app.router.add_get("/realms/shop/protocol/certs", certs)
        return app

    def token(self, resource: str, *, kid: str = "rsa-1", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "aud": resource, "sub": "alice", "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        alg = "RS256" if isinstance(self.keys[kid], rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(body, self.keys[kid], algorithm=alg, headers={"kid": kid})

    def public_pem(self, kid: str) -> bytes:
        return (
            self.keys[kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


@contextlib.asynccontextmanager
async def stack(gateway_factory: Any, **oauth: Any) -> AsyncIterator[tuple[IdP, str, str, Any]]:
    """(idp, gateway base URL, resource URL, gateway) with ``[http.oauth]`` pointing at the IdP."""
    idp = IdP()
    async with TestServer(idp.app(), host="127.0.0.1") as server:
        idp.issuer = str(server.make_url("/realms/shop"))
        port = free_port()
        resource = f"http://127.0.0.1:{port}/mcp"
        gw = gateway_factory(
            overrides={
                "http.tokens": [{"name": "static", "token": STATIC}],
                "http.max_sessions_per_token": 2,
                "http.oauth": {"issuer": idp.issuer, "resource": resource, **oauth},
            }
        )
        async with serve_http(gw, port) as base:
            yield idp, base, resource, gw


@contextlib.asynccontextmanager
async def mcp_client(base: str, token: str) -> AsyncIterator[Any]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(base + "/mcp", http_client=http)) as client:
        yield client


async def post(
    base: str, token: str | None, body: Any = INIT, query: str = ""
) -> tuple[int, dict[str, str], Any]:
    headers = {**HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    async with (
        aiohttp.ClientSession() as http,
        http.post(base + "/mcp" + query, json=body, headers=headers) as r,
    ):
        text = await r.text()
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        return r.status, dict(r.headers), data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_hs256(idp: IdP, resource: str) -> str:
    """The algorithm-confusion attack: HS256 keyed with the issuer's *public* key (PyJWT won't make
    this token, rightly, so it is put together by hand here, as an attacker would)."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    claims = {"iss": idp.issuer, "aud": resource, "sub": "mallory", "exp": now + 300, "scope": "orders:write"}
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(idp.public_pem("rsa-1"), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


async def test_discovery_metadata_and_the_challenges(gateway_factory) -> None:
    async with stack(gateway_factory) as (idp, base, resource, gw), aiohttp.ClientSession() as http:
        metadata_url = base + "/.well-known/oauth-protected-resource/mcp"
        for url in (metadata_url, base + "/.well-known/oauth-protected-resource"):
            async with http.get(url) as r:
                assert r.status == 200
                meta = await r.json()
            assert meta["resource"] == resource and meta["authorization_servers"] == [idp.issuer]
            assert meta["bearer_methods_supported"] == ["header"]
            assert {"orders:read", "orders:write", "store:demo"} <= set(meta["scopes_supported"])

        status, headers, body = await post(base, None)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        assert f'resource_metadata="{metadata_url}"' in headers["WWW-Authenticate"]
        # a token in the query string is never read
        token = idp.token(resource, scope="orders:read")
        assert (await post(base, None, query=f"?access_token={token}"))[0] == 401
        # a valid token without any orders scope: 403, naming the scope needed
        status, headers, body = await post(base, idp.token(resource, scope="profile email"))
        assert status == 403 and body["error"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
        assert 'scope="orders:read"' in headers["WWW-Authenticate"]
        # the static token keeps working beside OAuth
        assert (await post(base, STATIC))[0] == 200

        # sessions are capped per principal (sub + client): 2 here
        alice = idp.token(resource, scope="orders:read", azp="cli")
        bob = idp.token(resource, scope="orders:read", sub="bob", azp="cli")
        assert [(await post(base, alice))[0] for _ in range(3)] == [200, 200, 429]
        status, _, body = await post(base, alice)
        assert "token 'alice (cli)' already has 2 open sessions" in body["error"]["message"]
        assert (await post(base, bob))[0] == 200
        assert gw.metrics.value("http_refused_total", reason="unauthenticated") == 2
        assert gw.metrics.value("http_refused_total", reason="insufficient_scope") == 1


async def test_scopes_grant_reads_writes_and_stores_through_the_mcp_client(
    gateway_factory, orderdesk_sandbox, tmp_path: Path
) -> None:
    order_id = str(orderdesk_sandbox.orders()[0]["id"])
    async with stack(gateway_factory) as (idp, base, resource, _gw):
        reader = idp.token(resource, kid="rsa-1", scope="orders:read", azp="claude")
        async with mcp_client(base, reader) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "orders_get" in names and "orders_update" not in names
            got = await client.call_tool("orders_get", {"order_id": order_id})
            assert not got.is_error
            refused = await client.call_tool(
                "orders_update", {"order_id": order_id, "changes": {"email": "r@o.io"}}
            )
            assert refused.is_error and refused.content[0].text.startswith("AUTH: ")

        writer = idp.token(resource, kid="ec-1", scope="orders:read orders:write", sub="wendy", azp="claude")
        async with mcp_client(base, writer) as client:
            assert "orders_update" in {t.name for t in (await client.list_tools()).tools}
            done = await client.call_tool(
                "orders_update", {"order_id": order_id, "changes": {"email": "w@o.io"}}
            )
            assert not done.is_error, done.content[0].text
        assert orderdesk_sandbox.order(order_id)["email"] == "w@o.io"

        elsewhere = idp.token(resource, scope="orders:write store:elsewhere", sub="sam")
        async with mcp_client(base, elsewhere) as client:
            result = await client.call_tool("orders_get", {"order_id": order_id})
            assert result.is_error and "may not use store 'demo'" in result.content[0].text
        here = idp.token(resource, scope=["orders:read", "store:demo"], sub="sam")  # scp-style list
        async with mcp_client(base, here) as client:
            assert not (await client.call_tool("orders_get", {"order_id": order_id})).is_error

    audit = (tmp_path / "audit.jsonl").read_text()
    lines = [json.loads(x) for x in audit.splitlines()]
    assert {(x["principal"], x["outcome"]) for x in lines if x["tool"] == "orders.update"} >= {
        ("alice (claude)", "denied:AUTH"),
        ("wendy (claude)", "ok"),
    }, lines
    for token in (reader, writer, elsewhere, here):
        assert token not in audit and token.split(".")[2] not in audit


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "has expired"),
        ("wrong audience", "not for this resource"),
        ("wrong issuer", "not issued by"),
        ("bad signature", "signature does not verify"),
        ("alg none", "algorithm 'none' is not allowed"),
        ("HS256 with the public key", "algorithm 'HS256' is not allowed"),
        ("unknown key", "signing key the issuer does not publish"),
        ("not a JWT", "not a valid JWT"),
        ("neither a JWT nor a static token", "invalid bearer token"),
    ],
)
async def test_each_bad_token_is_refused_for_its_reason(gateway_factory, case: str, reason: str) -> None:
    async with stack(gateway_factory) as (idp, base, resource, _gw):
        good = {"scope": "orders:write"}
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = int(time.time())
        token = {
            "expired": lambda: idp.token(resource, exp=now - 3600, iat=now - 7200, **good),
            "wrong audience": lambda: idp.token("https://elsewhere.example.com/mcp", **good),
            "wrong issuer": lambda: idp.token(resource, iss="https://evil.example.com", **good),
            "bad signature": lambda: jwt.encode(
                {"iss": idp.issuer, "aud": resource, "sub": "m", "exp": now + 300, **good},
                other,
                algorithm="RS256",
                headers={"kid": "rsa-1"},
            ),
            "alg none": lambda: jwt.encode(
                {"iss": idp.issuer, "aud": resource, "sub": "m", "exp": now + 300, **good},
                None,
                algorithm="none",
            ),
            "HS256 with the public key": lambda: forged_hs256(idp, resource),
            "unknown key": lambda: _rekid(idp, resource, "nobody"),
            "not a JWT": lambda: "not.a-jwt.at-all",
            "neither a JWT nor a static token": lambda: "tok-static-mistyped",
        }[case]()
        status, headers, body = await post(base, token)
        assert status == 401, (case, body)
        assert reason in body["error_description"], (case, body)
        assert headers["Connection"] == "close"  # answered from the headers: the body is never waited for
        assert 'error="invalid_token"' in headers["WWW-Authenticate"]
        assert token not in json.dumps(body)


def _rekid(idp: IdP, resource: str, kid: str) -> str:
    """A token signed with a real key but naming a kid the issuer does not publish."""
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": resource, "sub": "m", "exp": now + 300, "scope": "orders:read"}
    return jwt.encode(claims, idp.keys["rsa-1"], algorithm="RS256", headers={"kid": kid})


async def test_a_rotated_key_works_without_a_restart_and_unknown_kids_cost_one_fetch_per_interval(
    gateway_factory, caplog: pytest.LogCaptureFixture
) -> None:
    async with stack(gateway_factory, jwks_refetch_s=0.5) as (idp, base, resource, _gw):
        assert (await post(base, idp.token(resource, scope="orders:read")))[0] == 200
        assert idp.jwks_hits == 1
        # the issuer rotates: a new key, published; tokens signed with it
        idp.keys["rsa-2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # a flood of made-up kids within the interval: at most one more fetch
        for i in range(20):
            assert (await post(base, _rekid(idp, resource, f"made-up-{i}")))[0] == 401
        assert idp.jwks_hits <= 2
        idp.published = ["rsa-2", "ec-1"]
        await asyncio.sleep(0.6)  # the re-fetch interval is a wall-clock rule
        rotated = idp.token(resource, kid="rsa-2", scope="orders:read", sub="carol")
        assert (await post(base, rotated))[0] == 200
        hits = idp.jwks_hits
        assert (await post(base, rotated))[0] == 200 and idp.jwks_hits == hits  # cached by kid now
        # the retired key is no longer accepted once the set was re-read
        assert (await post(base, idp.token(resource, kid="rsa-1", scope="orders:read")))[0] == 401


def test_oauth_config_from_the_environment_and_its_mistakes() -> None:
    from odmcp.config import load_config
    from odmcp.errors import ConfigError

    env = {
        "GATEWAY_OAUTH_ISSUER": "https://id.example.com/realms/shop",
        "GATEWAY_OAUTH_RESOURCE": "https://mcp.example.com/mcp",
    }
    oauth = load_config(None, env).http.oauth
    assert oauth is not None and oauth.algorithms == ["RS256", "ES256"] and oauth.leeway_s == 60
    assert oauth.scopes.read == "orders:read" and oauth.jwks_refetch_s == 30
    with pytest.raises(ConfigError, match="GATEWAY_OAUTH_RESOURCE is not set: http.oauth needs resource"):
        load_config(None, {"GATEWAY_OAUTH_ISSUER": env["GATEWAY_OAUTH_ISSUER"]})
    for algorithms, bad in ((["RS256", "HS256"], "HS256"), (["none"], "none")):
        with pytest.raises(ConfigError, match=f"'{bad}' is not allowed; use asymmetric algorithms only"):
            load_config(None, env, overrides={"http.oauth.algorithms": algorithms})
    with pytest.raises(ConfigError, match="GATEWAY_OAUTH_RESOURCE: expected an http"):
        load_config(None, {**env, "GATEWAY_OAUTH_RESOURCE": "mcp.example.com"})


async def test_scope_names_are_configurable_and_an_unreachable_issuer_is_503_not_401(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from odmcp.config import OAuthScopes, OAuthSettings
    from odmcp.oauth import JwtVerifier, TokenRefused

    names = OAuthScopes(read="od.read", write="od.write", store_prefix="shop/")
    gone = f"http://127.0.0.1:{free_port()}"
    verifier = JwtVerifier(OAuthSettings(issuer=gone, resource="https://mcp.example.com/mcp", scopes=names))
    claims = {"sub": "u", "exp": int(time.time()) + 60, "scp": ["od.read", "shop/main", "orders:write"]}
    principal = verifier._principal(claims)
    assert principal.read_only and principal.stores == ("main",) and principal.name == "u"
    assert not verifier._principal({**claims, "scope": "od.write", "azp": "c"}).read_only
    with pytest.raises(TokenRefused) as refused:
        verifier._principal({**claims, "scp": ["orders:read"]})  # the default names mean nothing here
    assert refused.value.status == 403 and refused.value.scope == "od.read"

    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode({**claims, "iss": gone}, key, algorithm="ES256", headers={"kid": "k"})
    with caplog.at_level(logging.WARNING, logger="odmcp.oauth"):
        for _ in range(5):
            with pytest.raises(TokenRefused) as down:
                await verifier.check(token)
            assert down.value.status == 503
    assert len(caplog.records) == 1 and "cannot fetch the signing keys" in caplog.records[0].getMessage()
    assert token not in caplog.text
