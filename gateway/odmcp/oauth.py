"""The gateway as an OAuth 2.1 resource server (MCP authorization): access tokens from an identity provider.

With ``[http.oauth]`` set, a caller may present an access token (a JWT) issued by the configured
authorization server instead of a static ``[[http.tokens]]`` token. The pieces are the MCP SDK's and
PyJWT's; nothing here parses or verifies a JWT by hand:

* :class:`JwtVerifier` implements the SDK's ``TokenVerifier`` protocol with PyJWT: the signature must
  verify against the issuer's key set (by ``kid``), ``alg`` must be in ``algorithms`` (asymmetric only,
  so never ``none`` and never HMAC keyed with a public key), ``iss`` must equal ``issuer``, ``aud`` must
  contain ``resource``, and ``exp``/``nbf``/``iat`` must hold within ``leeway_s``.
* The key set is fetched with PyJWT's ``PyJWKClient`` (in a worker thread: it uses blocking urllib)
  from ``jwks_uri``, or from the ``jwks_uri`` of the issuer's metadata
  (``/.well-known/oauth-authorization-server``, then ``/.well-known/openid-configuration``). The keys
  are kept by ``kid``; a token naming a kid not among them re-fetches the set, at most once per
  ``jwks_refetch_s`` (30 s), so a rotated key works without a restart and a flood of made-up kids
  costs one fetch per 30 s.
* Grants come from the token's scopes (``scope`` or ``scp``): ``orders:read`` reads, ``orders:write``
  writes too, ``store:<name>`` limits the stores (none: every store); names in ``[http.oauth.scopes]``.
  A token with neither read nor write is refused ``403 insufficient_scope``.
* The caller is an :class:`OAuthPrincipal`: its ``name`` is the token's ``sub`` (with ``client_id`` or
  ``azp`` when present), used for the audit line, the session caps, idempotency keys and the changes
  log. The raw token is never kept, logged or shown.

:mod:`odmcp.http` calls :meth:`JwtVerifier.check` before a request takes a slot, and serves the
RFC 9728 protected-resource metadata with the SDK's ``create_protected_resource_routes``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from odmcp.config import OAuthSettings

log = logging.getLogger("odmcp.oauth")

#: seconds allowed for fetching the issuer's metadata or key set
FETCH_TIMEOUT = 5.0


@dataclass(frozen=True)
class OAuthPrincipal:
    """A caller signed in with an access token; grants like a static token's (``stores``, ``read_only``)."""

    #: ``sub``, or ``sub (client_id)`` when the token names its client
    name: str
    subject: str
    client_id: str | None
    issuer: str
    stores: tuple[str, ...]
    read_only: bool
    scopes: tuple[str, ...]
    #: the SDK's user (no token inside): the SDK serves a session only to the caller that opened it
    user: AuthenticatedUser = field(compare=False, repr=False)

    def allows_store(self, store: str) -> bool:
        return "*" in self.stores or store in self.stores


class TokenRefused(Exception):
    """Why a presented access token is not accepted: the HTTP answer (401/403/503) in RFC 6750 terms."""

    def __init__(
        self, description: str, *, status: int = 401, error: str = "invalid_token", scope: str = ""
    ) -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.error = error
        self.scope = scope


_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf/iat in the future)"),
    (jwt.InvalidAudienceError, "the token is not for this resource (its aud must contain {resource})"),
    (jwt.InvalidIssuerError, "the token was not issued by {issuer}"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "the token's algorithm does not fit its key"),
    (jwt.InvalidKeyError, "the token's algorithm does not fit its key"),
)


class JwtVerifier:
    """Access-token checks against one authorization server (the SDK's ``TokenVerifier`` protocol)."""

    def __init__(self, settings: OAuthSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.issuer = settings.issuer
        self.resource = settings.resource
        # a trailing slash on either side is not a different resource
        base = settings.resource.rstrip("/")
        self._audience = [base, base + "/"]
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._jwks_uri = settings.jwks_uri
        self._last_fetch = -math.inf
        self._lock = asyncio.Lock()
        #: key-set fetches so far (for tests and the bench)
        self.fetches = 0

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's ``TokenVerifier``: the caller's access info, or None for a token not accepted."""
        try:
            principal = await self.check(token)
        except TokenRefused:
            return None
        return principal.user.access_token

    async def check(self, token: str) -> OAuthPrincipal:
        """The caller a valid token stands for; :class:`TokenRefused` (with the reason) otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise TokenRefused("the token is not a valid JWT") from None
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            allowed = ", ".join(self.settings.algorithms)
            raise TokenRefused(f"algorithm {str(alg)[:20]!r} is not allowed (allowed: {allowed})")
        key = await self._key(header.get("kid"))
        s = self.settings
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self.issuer,
                leeway=s.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.MissingRequiredClaimError as err:
            raise TokenRefused(f"the token has no {err.claim!r} claim") from None
        except jwt.InvalidTokenError as err:
            reason = next((r for kind, r in _REASONS if isinstance(err, kind)), "the token is not valid")
            raise TokenRefused(reason.format(resource=self.resource, issuer=self.issuer)) from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> OAuthPrincipal:
        names = self.settings.scopes
        raw = claims.get("scope", claims.get("scp", ""))
        scopes = tuple(raw.split() if isinstance(raw, str) else [str(x) for x in raw if isinstance(x, str)])
        can_write = names.write in scopes
        if not can_write and names.read not in scopes:
            raise TokenRefused(
                f"the token grants neither {names.read} nor {names.write}",
                status=403,
                error="insufficient_scope",
                scope=names.read,
            )
        stores = tuple(x[len(names.store_prefix) :] for x in scopes if x.startswith(names.store_prefix)) or (
            "*",
        )
        subject = str(claims["sub"])
        client = claims.get("client_id") or claims.get("azp")
        client_id = str(client) if client else None
        user = AuthenticatedUser(
            AccessToken(
                token="",  # never kept
                client_id=client_id or subject,
                scopes=list(scopes),
                expires_at=int(claims["exp"]),
                resource=self.resource,
                subject=subject,
                claims={"iss": self.issuer},
            )
        )
        return OAuthPrincipal(
            name=f"{subject} ({client_id})" if client_id and client_id != subject else subject,
            subject=subject,
            client_id=client_id,
            issuer=self.issuer,
            stores=stores,
            read_only=not can_write,
            scopes=scopes,
            user=user,
        )

    # --- keys -----------------------------------------------------------------------------------

    async def _key(self, kid: Any) -> jwt.PyJWK:
        key = self._lookup(kid)
        if key is not None:
            return key
        async with self._lock:  # one fetch at a time; those who waited look again first
            key = self._lookup(kid)
            if key is None and self.clock() - self._last_fetch >= self.settings.jwks_refetch_s:
                await self._fetch()
                key = self._lookup(kid)
        if key is None:
            if not self._keys:
                raise TokenRefused(
                    "the identity provider's signing keys can't be fetched right now", status=503
                )
            raise TokenRefused(
                f"the token names a signing key the issuer does not publish (kid {str(kid)[:60]!r})"
            )
        return key

    def _lookup(self, kid: Any) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:  # a kid-less token, and the issuer has one key
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if isinstance(kid, str) else None

    async def _fetch(self) -> None:
        self._last_fetch = self.clock()
        try:
            uri = self._jwks_uri or await self._discover()
            self._jwks_uri = uri
            client = jwt.PyJWKClient(uri, cache_jwk_set=False, cache_keys=False, timeout=FETCH_TIMEOUT)
            keys = await asyncio.to_thread(client.get_signing_keys)
        except (
            jwt.PyJWKClientError,
            jwt.PyJWKSetError,
            OSError,
            aiohttp.ClientError,
            TimeoutError,
            ValueError,
        ) as err:
            log.warning(
                "cannot fetch the signing keys of %s: %s; tokens naming an unknown key are refused, "
                "next try in %g s at the earliest",
                self.issuer,
                str(err)[:200],
                self.settings.jwks_refetch_s,
            )
            return
        self.fetches += 1
        self._keys = {k.key_id: k for k in keys}
        log.info("fetched %d signing key(s) of %s", len(keys), self.issuer)

    async def _discover(self) -> str:
        """The ``jwks_uri`` from the issuer's metadata (RFC 8414, then OpenID Connect discovery)."""
        issuer = self.issuer.rstrip("/")
        parts = urlsplit(issuer)
        candidates = [f"{issuer}/.well-known/oauth-authorization-server"]
        if parts.path:  # RFC 8414 puts the well-known part between the host and the issuer's path
            candidates.append(
                f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"
            )
        candidates.append(f"{issuer}/.well-known/openid-configuration")
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for url in candidates:
                async with http.get(url, allow_redirects=False) as r:
                    if r.status != 200:
                        continue
                    meta = await r.json(content_type=None)
                named = meta.get("issuer") if isinstance(meta, dict) else None
                if not isinstance(meta, dict) or str(named).rstrip("/") != issuer:
                    raise ValueError(f"{url} describes issuer {named!r}, not {self.issuer}")
                uri = meta.get("jwks_uri")
                if isinstance(uri, str) and uri.startswith(("https://", "http://")):
                    return uri
                raise ValueError(f"{url} names no jwks_uri")
        raise ValueError(f"no authorization server metadata at {', '.join(candidates)}")


def challenge(refused: TokenRefused, metadata_url: str) -> str:
    """The ``WWW-Authenticate`` value for a refusal (RFC 6750 §3, RFC 9728 §5.1)."""
    parts = [f'error="{refused.error}"', f'error_description="{_quoted(refused.description)}"']
    if refused.scope:
        parts.append(f'scope="{_quoted(refused.scope)}"')
    parts.append(f'resource_metadata="{_quoted(metadata_url)}"')
    return "Bearer " + ", ".join(parts)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")
