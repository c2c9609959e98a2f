"""The emulator's Entra ID: an RS256 signing key, token minting and token verification.

Tokens carry the claims of a real managed-identity v1 access token, so anything that inspects claims
(``keyless token``, ``doctor``, jwt.io) sees what it would see in Azure. The signing key is created once
per data directory (0600) with a self-signed certificate, because Entra's JWKS publishes ``x5c``/``x5t``
and some clients pin on them.

Verification mirrors what the storage front end checks and answers with its AuthenticationErrorDetail
texts. Lifetime is checked against the emulator's clock (which can be skewed on purpose), not pyjwt's,
and verified tokens are cached by hash so that a busy HEAD/GET loop does not pay for RSA on every call.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from keyless.emulator.clock import Clock
from keyless.emulator.config import EmulatorConfig, Identity
from keyless.emulator.errors import TokenRejected
from keyless.fsutil import atomic_write
from keyless.protocol import FILE_ENDPOINT_SUFFIX, STORAGE_AUDIENCES

# Azure's token validation allows five minutes of clock skew either way.
CLOCK_SKEW = 300.0
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"
FEDERATED_NAMESPACE = "default"
# Tenant creation time claim (xms_tcdt): any fixed past epoch second looks right.
_TENANT_CREATED = 1_600_000_000
_CACHE_MAX = 4096

# AuthenticationErrorDetail texts the storage service returns for rejected bearer tokens.
DETAIL_EXPIRED = "Lifetime validation failed. The token is expired."
DETAIL_NOT_YET_VALID = "Lifetime validation failed. The token is not yet valid."
DETAIL_SIGNATURE = "Signature validation failed."
DETAIL_AUDIENCE = "Audience validation failed. Audience did not match."
DETAIL_ISSUER = "Issuer validation failed."
DETAIL_MALFORMED = "The token is malformed."


@dataclass(frozen=True)
class MintedToken:
    access_token: str
    expires_on: int
    expires_in: int
    not_before: int
    resource: str


class AssertionRejected(Exception):
    """A workload-identity client assertion failed; carries the AADSTS number and its message."""

    def __init__(self, aadsts: int, error: str, message: str) -> None:
        super().__init__(f"AADSTS{aadsts}: {message}")
        self.aadsts = aadsts
        self.error = error
        self.message = message


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def service_account_subject(identity: Identity) -> str:
    """The Kubernetes subject an identity's (implicit) federated credential trusts."""
    return f"system:serviceaccount:{FEDERATED_NAMESPACE}:{identity.name}"


class TokenIssuer:
    def __init__(self, data_dir: Path, config: EmulatorConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.tenant_id = config.tenant_id
        self.issuer = f"https://sts.windows.net/{config.tenant_id}/"
        # The stand-in for an AKS cluster's OIDC issuer. Port-independent so that assertions written to
        # files stay valid across restarts of the same data directory.
        self.federation_issuer = f"https://oidc.keyless.emulator/{config.tenant_id}/"
        self._key, self._cert = self._load_or_create(data_dir)
        der = self._cert.public_bytes(serialization.Encoding.DER)
        self.x5t = _b64url(hashlib.sha1(der).digest())  # noqa: S324 - x5t is defined as a SHA-1 thumbprint
        self.kid = self.x5t  # Entra uses the thumbprint as the key id
        self._x5c = base64.b64encode(der).decode("ascii")
        self._public = self._key.public_key()
        self._cache: OrderedDict[tuple[bytes, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    # --- key material ----------------------------------------------------------------------------------

    @staticmethod
    def _load_or_create(data_dir: Path) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key_path = data_dir / "signing-key.pem"
        cert_path = data_dir / "signing-cert.pem"
        key: rsa.RSAPrivateKey
        if key_path.exists():
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{key_path}: not an RSA key; delete it to have a new one generated")
            key = loaded
        else:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            atomic_write(
                key_path,
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
            )
        if cert_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if cert.public_key() == key.public_key():
                return key, cert
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyless emulator token signing")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return key, cert

    def _headers(self) -> dict[str, str]:
        return {"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.x5t}

    # --- minting ---------------------------------------------------------------------------------------

    def mint(self, identity: Identity, resource: str, lifetime: float | None = None) -> MintedToken:
        now = int(self.clock.now())
        life = int(lifetime if lifetime is not None else self.config.token_lifetime)
        exp = now + life
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "aio": _b64url(secrets.token_bytes(24)),
            "appid": identity.client_id,
            "appidacr": "2",
            "idp": self.issuer,
            "idtyp": "app",
            "oid": identity.object_id,
            "rh": "0." + _b64url(secrets.token_bytes(24)) + ".",
            "sub": identity.object_id,
            "tid": self.tenant_id,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
            "xms_mirid": identity.mirid,
            "xms_tcdt": _TENANT_CREATED,
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers=self._headers())
        return MintedToken(access_token=token, expires_on=exp, expires_in=life, not_before=now,
                           resource=resource)

    def mint_federated_assertion(self, identity: Identity, lifetime: float = 3600.0) -> str:
        """A stand-in for the projected Kubernetes service-account token of workload identity."""
        now = int(self.clock.now())
        claims = {
            "aud": [FEDERATED_AUDIENCE],
            "iss": self.federation_issuer,
            "sub": service_account_subject(identity),
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime),
            "jti": _b64url(secrets.token_bytes(16)),
            "kubernetes.io": {
                "namespace": FEDERATED_NAMESPACE,
                "serviceaccount": {"name": identity.name, "uid": identity.object_id},
            },
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers=self._headers())

    # --- verification ----------------------------------------------------------------------------------

    def _decode(self, token: str) -> dict[str, Any]:
        """Signature only; every claim check is done by the callers with the emulator's clock."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected(DETAIL_MALFORMED) from None
        if header.get("alg") != "RS256":
            raise TokenRejected(DETAIL_SIGNATURE)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=["RS256"],
                options={"verify_signature": True, "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False, "verify_aud": False, "verify_iss": False},
            )
        except jwt.InvalidSignatureError:
            raise TokenRejected(DETAIL_SIGNATURE) from None
        except jwt.PyJWTError:
            raise TokenRejected(DETAIL_MALFORMED) from None
        return claims

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        now = self.clock.now()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or now > exp + CLOCK_SKEW:
            raise TokenRejected(DETAIL_EXPIRED)
        if isinstance(nbf, int | float) and now < nbf - CLOCK_SKEW:
            raise TokenRejected(DETAIL_NOT_YET_VALID)

    def storage_audiences(self, account: str, account_urls: Iterable[str] = ()) -> set[str]:
        urls = {f"https://{account}.{FILE_ENDPOINT_SUFFIX}", *account_urls}
        out = set(STORAGE_AUDIENCES)
        for url in urls:
            base = url.rstrip("/")
            out.update({base, base + "/"})
        return out

    def verify_storage_token(self, token: str, account: str,
                             account_urls: Iterable[str] = ()) -> dict[str, Any]:
        """Claims of a valid token for ``account``'s File service; raises TokenRejected otherwise.

        ``account_urls`` adds the emulator's own account URLs (IP-style) as accepted audiences.
        """
        urls = tuple(account_urls)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        key = (digest, account + "\n" + "\n".join(urls))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is not None:
            self._check_lifetime(cached)  # expiry is enforced on every use, cached or not
            return cached
        claims = self._decode(token)
        self._check_lifetime(claims)
        aud = claims.get("aud")
        if not isinstance(aud, str) or aud not in self.storage_audiences(account, urls):
            raise TokenRejected(DETAIL_AUDIENCE)
        if claims.get("iss") != self.issuer:
            raise TokenRejected(DETAIL_ISSUER)
        with self._lock:
            self._cache[key] = claims
            while len(self._cache) > _CACHE_MAX:
                self._cache.popitem(last=False)
        return claims

    def verify_token(self, token: str, audiences: Iterable[str]) -> dict[str, Any]:
        """Claims of a valid token (signature, lifetime, issuer) for one of ``audiences``; raises
        TokenRejected otherwise. For audiences other than storage (Azure Resource Manager)."""
        claims = self._decode(token)
        self._check_lifetime(claims)
        if claims.get("aud") not in set(audiences):
            raise TokenRejected(DETAIL_AUDIENCE)
        if claims.get("iss") != self.issuer:
            raise TokenRejected(DETAIL_ISSUER)
        return claims

    def verify_federated_assertion(self, assertion: str, identity: Identity) -> dict[str, Any]:
        """Checks a workload-identity client assertion the way Entra checks a federated credential."""
        try:
            claims = self._decode(assertion)
        except TokenRejected:
            raise AssertionRejected(
                50027, "invalid_request",
                "JWT token is invalid or malformed.",
            ) from None
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        iss, sub = claims.get("iss"), claims.get("sub")
        if iss != self.federation_issuer:
            raise AssertionRejected(
                700211, "invalid_client",
                f"No matching federated identity record found for presented assertion issuer '{iss}'.",
            )
        now = self.clock.now()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or now > exp + CLOCK_SKEW or (
            isinstance(nbf, int | float) and now < nbf - CLOCK_SKEW
        ):
            raise AssertionRejected(
                700024, "invalid_client",
                "Client assertion is not within its valid time range.",
            )
        if FEDERATED_AUDIENCE not in auds:
            raise AssertionRejected(
                700212, "invalid_client",
                f"No matching federated identity record found for presented assertion audience "
                f"'{', '.join(str(a) for a in auds)}'.",
            )
        if sub != service_account_subject(identity):
            raise AssertionRejected(
                70021, "invalid_request",
                f"No matching federated identity record found for presented assertion. "
                f"Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. "
                f"Assertion Audience: '{FEDERATED_AUDIENCE}'.",
            )
        return claims

    # --- publication -----------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        numbers = self._public.public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.x5t,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                    "x5c": [self._x5c],
                    "issuer": self.issuer,
                }
            ]
        }

    def openid_configuration(self, base_url: str) -> dict[str, Any]:
        """The v2.0 discovery document, with endpoints on ``base_url`` (the listener that was asked)."""
        base = base_url.rstrip("/")
        tid = self.tenant_id
        return {
            "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "ver"],
            "kerberos_endpoint": f"{base}/{tid}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "keyless.emulator",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
