"""JWT validation through a real Envoy to the real FastAPI backend, with tokens made here."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import requests

from conftest import Keys, sha256_ref, start_gateway
from http_helpers import header_values, seen, upstream_requests
from tokens import (AUDIENCE, CLIENT, ISSUER, STRANGER, Signers, b64url, claims, sign,
                    unsigned)

KEY_HEADER = "Ocp-Apim-Subscription-Key"
ALGORITHMS = ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"]


@pytest.fixture(scope="module")
def signers() -> Signers:
    return Signers()


def jwt_plugin(signers: Signers, **jwt_overrides) -> dict:
    section = {
        "issuers": [ISSUER],
        "audiences": [AUDIENCE],
        "algorithms": ALGORITHMS,
        "jwks": signers.jwks,
        "consumer_claim": "azp",
        "required_claims": [{"name": "roles", "any_of": ["Invoices.Validate", "Invoices.Admin"]}],
        "claims_to_headers": {"oid": "x-user-oid"},
        "forward_token": True,
    }
    section.update(jwt_overrides)
    return {
        "products": {"starter": {}, "partner": {}},
        "consumers": [
            {"id": "invoice-flow", "product": "starter", "keys": [sha256_ref(Keys.primary)]},
            {"id": "contoso-portal", "product": "partner", "jwt_client_ids": [CLIENT]},
        ],
        "jwt": section,
        "operations": [
            {"name": "jwt-op", "path_prefix": "/jwt", "auth": "jwt",
             "request_headers": {"set": {"x-consumer-id": "{consumer}",
                                         "x-tenant": "{claim:tid}"}}},
            {"name": "either-op", "path": "/either", "auth": "either",
             "request_headers": {"set": {"x-consumer-id": "{consumer}"}}},
            {"name": "both-op", "path": "/both", "auth": "both",
             "request_headers": {"set": {"x-consumer-id": "{consumer}"}}},
            {"name": "key-op", "path": "/key", "auth": "subscription_key"},
        ],
    }


@pytest.fixture(scope="module")
def jwt_gateway(workdir, backend, signers):
    envoy = start_gateway(workdir, backend, jwt_plugin(signers), "jwt-gateway")
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


@pytest.fixture(scope="module")
def lenient_gateway(workdir, backend, signers):
    """Skew, default product, all_of, and tokens not forwarded."""
    plugin = jwt_plugin(
        signers, clock_skew_s=120, default_product="starter", forward_token=False,
        required_claims=[{"name": "roles", "all_of": ["Invoices.Validate", "Invoices.Read"]}])
    envoy = start_gateway(workdir, backend, plugin, "jwt-lenient")
    yield envoy
    envoy.stop()


def call(gateway, token: str | None, path: str = "/jwt/check", scheme: str = "Bearer",
         extra: dict | None = None):
    headers = dict(extra or {})
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}" if scheme else token
    return requests.get(f"{gateway.url}{path}", headers=headers, timeout=10)


def assert_invalid(response, reason: str):
    assert response.status_code == 401, response.text
    assert response.json() == {
        "statusCode": 401, "message": f"JWT validation failed: {reason}. Access denied."}
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def assert_admitted(response, consumer: str = "contoso-portal") -> dict:
    received = seen(response)
    assert header_values(received, "x-consumer-id") == [consumer]
    return received


@pytest.mark.parametrize("alg,kid", [
    ("RS256", "rsa-2048"), ("RS256", "rsa-3072"), ("RS256", "rsa-4096"), ("PS256", "rsa-2048"),
    ("ES256", "ec-256"), ("ES384", "ec-384"), ("EdDSA", "ed-1"), ("HS256", "hmac-1"),
])
def test_valid_tokens_of_every_algorithm(jwt_gateway, signers, alg, kid):
    token = sign(signers, claims(), alg=alg, kid=kid)
    received = assert_admitted(call(jwt_gateway, token))
    assert header_values(received, "x-user-oid") == ["00000000-0000-0000-0000-0000000000aa"]
    assert header_values(received, "x-tenant") == ["tenant-7"]
    # forward_token defaults to true: the upstream sees the token.
    assert header_values(received, "authorization") == [f"Bearer {token}"]


def test_missing_token_is_401_jwt_not_present(jwt_gateway):
    before = upstream_requests(jwt_gateway)
    response = call(jwt_gateway, None)
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "JWT not present."}
    assert response.headers["www-authenticate"] == "Bearer"
    assert upstream_requests(jwt_gateway) == before


def test_bearer_scheme_missing_or_lower_case(jwt_gateway, signers):
    token = sign(signers, claims())
    response = call(jwt_gateway, token, scheme="")
    assert response.status_code == 401
    assert response.json()["message"] == "JWT not present."
    # RFC 7235: the scheme is case-insensitive.
    assert_admitted(call(jwt_gateway, token, scheme="bearer"))


# Times are taken when the test runs, not when the module is collected: a slow run once
# reached these tests more than 60 s after collection, and `nbf = collected + 60` had passed.
@pytest.mark.parametrize("edit,reason", [
    (lambda now: dict(exp=now - 30), "token has expired"),
    (lambda now: dict(exp=None), "token has no expiry"),
    (lambda now: dict(nbf=now + 60), "token is not yet valid"),
    (lambda now: dict(iat=now + 60), "token was issued in the future"),
    (lambda now: dict(iss="https://login.microsoftonline.com/other-tenant/v2.0"),
     "issuer is not allowed"),
    (lambda now: dict(aud="api://another-app"), "audience is not allowed"),
], ids=["expired", "no-exp", "not-yet-valid", "issued-in-future", "wrong-issuer",
        "wrong-audience"])
def test_claim_failures_are_401(jwt_gateway, signers, edit, reason):
    before = upstream_requests(jwt_gateway)
    token = sign(signers, claims(**edit(int(time.time()))))
    assert_invalid(call(jwt_gateway, token), reason)
    assert upstream_requests(jwt_gateway) == before


def test_array_audience(jwt_gateway, signers):
    assert_admitted(call(jwt_gateway, sign(signers, claims(aud=["api://x", AUDIENCE]))))
    assert_invalid(call(jwt_gateway, sign(signers, claims(aud=["api://x", "api://y"]))),
                   "audience is not allowed")


def test_skew_is_honoured(jwt_gateway, lenient_gateway, signers):
    early = sign(signers, claims(nbf=int(time.time()) + 60))
    assert_invalid(call(jwt_gateway, early), "token is not yet valid")
    assert_admitted(call(lenient_gateway, sign(
        signers, claims(nbf=int(time.time()) + 60, roles=["Invoices.Validate", "Invoices.Read"]))))
    just_expired = claims(exp=int(time.time()) - 30, roles=["Invoices.Validate", "Invoices.Read"])
    assert_admitted(call(lenient_gateway, sign(signers, just_expired)))


def test_tampered_payload_and_signature(jwt_gateway, signers):
    header, payload, signature = sign(signers, claims()).split(".")
    forged = json.loads(base64_decode(payload))
    forged["roles"] = ["Invoices.Admin"]
    assert_invalid(call(jwt_gateway, f"{header}.{b64url(json.dumps(forged).encode())}.{signature}"),
                   "signature is invalid")
    flipped = bytearray(base64_decode(signature))
    flipped[0] ^= 0x01
    assert_invalid(call(jwt_gateway, f"{header}.{payload}.{b64url(bytes(flipped))}"),
                   "signature is invalid")


def base64_decode(part: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_alg_none_is_refused(jwt_gateway):
    for alg in ("none", "None"):
        token = unsigned({"alg": alg, "typ": "JWT", "kid": "rsa-2048"}, claims())
        assert_invalid(call(jwt_gateway, token), "algorithm is not allowed")


def test_hs256_signed_with_the_rsa_public_key_is_refused(jwt_gateway, signers):
    pem = signers.rsa_public_pem()
    for kid in ("rsa-2048", None):
        header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
        signing_input = unsigned(header, claims())[:-1]
        tag = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
        response = call(jwt_gateway, signing_input + "." + b64url(tag))
        assert response.status_code == 401
        assert response.json()["message"] in (
            "JWT validation failed: algorithm does not match the signing key. Access denied.",
            "JWT validation failed: signature is invalid. Access denied.")


def test_unknown_kid_and_no_kid(jwt_gateway, signers):
    unknown = sign(signers, claims(), kid="rotated-away", key=signers.private("rsa-2048"))
    assert_invalid(call(jwt_gateway, unknown), "signing key not found")
    # Without a kid, the keys that fit the algorithm are tried.
    assert_admitted(call(jwt_gateway, sign(signers, claims(), alg="ES256", kid=None,
                                           key=signers.ec256)))


@pytest.mark.parametrize("make", [
    lambda t: ".".join(t.split(".")[:2]),
    lambda t: t.split(".")[0] + ".%%%%." + t.split(".")[2],
    lambda t: b64url(b"{not json") + "." + ".".join(t.split(".")[1:]),
    lambda t: t + ".extra",
], ids=["two-segments", "bad-base64", "non-json-header", "four-segments"])
def test_malformed_tokens(jwt_gateway, signers, make):
    assert_invalid(call(jwt_gateway, make(sign(signers, claims()))), "token is malformed")


def test_64_kib_token_is_refused_without_a_5xx(jwt_gateway, signers):
    header, payload, signature = sign(signers, claims()).split(".")
    huge = f"{header}.{payload}{'A' * 64 * 1024}.{signature}"
    response = call(jwt_gateway, huge)
    # Envoy's own header limit (60 KiB by default) may answer 431 before tollgate sees it.
    assert response.status_code in (401, 431), response.status_code
    if response.status_code == 401:
        assert "token is too large" in response.json()["message"]
    big = f"{header}.{payload}{'A' * 20 * 1024}.{signature}"
    assert_invalid(call(jwt_gateway, big), "token is too large")


def test_missing_required_claim_is_403(jwt_gateway, signers):
    before = upstream_requests(jwt_gateway)
    for roles in (None, ["Invoices.Read"], "Invoices.Read"):
        response = call(jwt_gateway, sign(signers, claims(roles=roles)))
        assert response.status_code == 403
        assert response.json() == {
            "statusCode": 403,
            "message": "Required claim 'roles' is missing or has no accepted value. Access denied."}
    assert upstream_requests(jwt_gateway) == before


def test_array_claim_any_of_and_all_of(jwt_gateway, lenient_gateway, signers):
    # any_of: one matching element is enough.
    assert_admitted(call(jwt_gateway, sign(signers, claims(roles=["Other", "Invoices.Admin"]))))
    # all_of: every listed value must be there.
    both = sign(signers, claims(roles=["Invoices.Read", "X", "Invoices.Validate"]))
    assert_admitted(call(lenient_gateway, both))
    one = sign(signers, claims(roles=["Invoices.Validate"]))
    assert call(lenient_gateway, one).status_code == 403


def test_mapped_and_unmapped_clients(jwt_gateway, signers):
    assert_admitted(call(jwt_gateway, sign(signers, claims(azp=CLIENT))))
    response = call(jwt_gateway, sign(signers, claims(azp=STRANGER)))
    assert response.status_code == 403
    assert response.json()["message"] == (
        "The token's 'azp' claim names no registered consumer. Access denied.")


def test_default_product_makes_its_own_consumer(lenient_gateway, signers):
    token = sign(signers, claims(azp=STRANGER, roles=["Invoices.Validate", "Invoices.Read"]))
    assert_admitted(call(lenient_gateway, token), consumer=f"jwt:{STRANGER}")


def test_auth_either(jwt_gateway, signers):
    assert_admitted(call(jwt_gateway, None, "/either", extra={KEY_HEADER: Keys.primary}),
                    consumer="invoice-flow")
    assert_admitted(call(jwt_gateway, sign(signers, claims()), "/either"))
    response = call(jwt_gateway, None, "/either")
    assert response.status_code == 401
    assert "missing subscription key" in response.json()["message"]


def test_auth_both(jwt_gateway, signers):
    token = sign(signers, claims())
    received = assert_admitted(
        call(jwt_gateway, token, "/both", extra={KEY_HEADER: Keys.primary}),
        consumer="invoice-flow")
    assert header_values(received, KEY_HEADER) == []
    response = call(jwt_gateway, None, "/both", extra={KEY_HEADER: Keys.primary})
    assert response.json()["message"] == "JWT not present."
    response = call(jwt_gateway, token, "/both")
    assert "missing subscription key" in response.json()["message"]
    response = call(jwt_gateway, token + "x", "/both", extra={KEY_HEADER: Keys.primary})
    assert response.status_code == 401


def test_claim_headers_overwrite_spoofed_copies(jwt_gateway, signers):
    token = sign(signers, claims())
    received = assert_admitted(call(jwt_gateway, token, extra={
        "x-user-oid": "spoofed", "x-consumer-id": "admin", "x-tenant": "evil"}))
    assert header_values(received, "x-user-oid") == ["00000000-0000-0000-0000-0000000000aa"]
    assert header_values(received, "x-tenant") == ["tenant-7"]
    # On a key-only operation there is no token: the claim header is removed, not passed on.
    response = call(jwt_gateway, None, "/key", extra={KEY_HEADER: Keys.primary,
                                                      "x-user-oid": "spoofed"})
    assert header_values(seen(response), "x-user-oid") == []


def test_forward_token_false_strips_authorization(lenient_gateway, signers):
    token = sign(signers, claims(roles=["Invoices.Validate", "Invoices.Read"]))
    received = assert_admitted(call(lenient_gateway, token))
    assert header_values(received, "authorization") == []


def test_tokens_never_reach_the_log_and_the_vm_is_alive(jwt_gateway, signers):
    token = sign(signers, claims())
    assert_admitted(call(jwt_gateway, token))
    log = jwt_gateway.log()
    assert "panicked" not in log
    assert token.split(".")[2] not in log
    stats = requests.get(f"{jwt_gateway.admin}/stats", timeout=5).text
    assert token.split(".")[2] not in stats
