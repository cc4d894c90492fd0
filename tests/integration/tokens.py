"""Signing keys and tokens made by the tests themselves (cryptography + PyJWT), never files."""

from __future__ import annotations

import base64
import json
import secrets
import time
from functools import cached_property

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
AUDIENCE = "api://invoice-validator"
CLIENT = "6f1d4b0e-0000-4000-8000-0000000000a1"   # mapped to consumer contoso-portal
STRANGER = "6f1d4b0e-0000-4000-8000-0000000000ff"  # mapped to nobody


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signers:
    """One key per algorithm family, plus larger RSA keys; `kid` = the dict key."""

    def __init__(self):
        self.rsa = {
            "rsa-2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "rsa-3072": rsa.generate_private_key(public_exponent=65537, key_size=3072),
            "rsa-4096": rsa.generate_private_key(public_exponent=65537, key_size=4096),
        }
        self.ec256 = ec.generate_private_key(ec.SECP256R1())
        self.ec384 = ec.generate_private_key(ec.SECP384R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.hmac = secrets.token_bytes(32)

    def private(self, kid: str):
        return {
            **self.rsa,
            "ec-256": self.ec256, "ec-384": self.ec384, "ed-1": self.ed, "hmac-1": self.hmac,
        }[kid]

    @cached_property
    def jwks(self) -> dict:
        keys = []
        for kid, key in self.rsa.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "x5t": "not-used"})
        for kid, key in (("ec-256", self.ec256), ("ec-384", self.ec384)):
            keys.append({**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": kid})
        keys.append({**json.loads(OKPAlgorithm.to_jwk(self.ed.public_key())), "kid": "ed-1"})
        keys.append({"kty": "oct", "kid": "hmac-1", "k": b64url(self.hmac)})
        return {"keys": keys}

    def rsa_public_pem(self, kid: str = "rsa-2048") -> bytes:
        return self.rsa[kid].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {
        "iss": ISSUER, "aud": AUDIENCE, "azp": CLIENT, "tid": "tenant-7",
        "oid": "00000000-0000-0000-0000-0000000000aa", "roles": ["Invoices.Validate"],
        "iat": now - 5, "nbf": now - 5, "exp": now + 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(signers: Signers, payload: dict, alg: str = "RS256", kid: str | None = "rsa-2048",
         key=None) -> str:
    headers = {"kid": kid} if kid is not None else {}
    if key is None:
        key = signers.private(kid if kid is not None else "rsa-2048")
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def unsigned(header: dict, payload: dict, signature: str = "") -> str:
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()),
                     signature])
