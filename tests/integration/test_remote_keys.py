"""Signing keys fetched from an identity provider (OpenID discovery, then jwks_uri) through an
Envoy cluster: first fetch, a rotated key accepted on its first request (which waits for the
refetch), a withdrawn key's cached tokens refused, unusable keys skipped, last good set kept
when the provider fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

import stack
from conftest import start_gateway
from tokens import AUDIENCE, CLIENT, Signers, claims, sign

IDP_DIR = stack.REPO / "tests" / "integration"


@pytest.fixture(scope="module")
def idp(workdir):
    port = stack.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(IDP_DIR), "idp:app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=(workdir / "idp.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    stack.wait_until(lambda: requests.get(f"{url}/healthz", timeout=1).ok, "idp",
                     process=process)
    yield port, url
    stack.stop(process)


def control(url: str, **state) -> dict:
    return requests.post(f"{url}/_control", json=state, timeout=5).json()


@pytest.fixture(scope="module")
def signers() -> Signers:
    return Signers()


def only(signers: Signers, *kids: str) -> dict:
    return {"keys": [k for k in signers.jwks["keys"] if k["kid"] in kids]}


@pytest.fixture(scope="module")
def remote_gateway(workdir, backend, idp, signers):
    port, url = idp
    control(url, jwks=only(signers, "rsa-2048"), fail=False)
    plugin = {
        "products": {"partner": {}},
        "consumers": [{"id": "contoso-portal", "product": "partner", "jwt_client_ids": [CLIENT]}],
        "jwt": {
            "audiences": [AUDIENCE],
            "openid_config": {
                "url": "https://idp.test/tenant/v2.0/.well-known/openid-configuration",
                "cluster": "idp", "refresh_interval_s": 3600, "timeout_ms": 2000},
            "unknown_kid_refetch_s": 1,
        },
        "operations": [{"name": "jwt-op", "path": "/jwt", "auth": "jwt"}],
    }
    envoy_config = stack.render_envoy_config(
        plugin, listen_port=stack.free_port(), admin_port=stack.free_port(),
        backend_port=backend.port, extra_clusters={"idp": port})
    envoy = stack.Envoy(workdir, envoy_config, name="remote-keys")
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


def call(gateway, token: str) -> requests.Response:
    return requests.get(f"{gateway.url}/jwt", headers={"Authorization": f"Bearer {token}"},
                        timeout=10)


def eventually(check, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.25)


def test_keys_come_from_discovery_then_jwks_uri(remote_gateway, signers):
    token = sign(signers, claims(), kid="rsa-2048")
    assert eventually(lambda: call(remote_gateway, token).status_code == 200)
    assert "fetched 1 signing keys" in remote_gateway.log()


def unpublished(signers: Signers) -> str:
    """A token whose kid no set has ever held."""
    return sign(signers, claims(), kid="never-published", key=signers.private("rsa-3072"))


def past_the_refetch_bound():
    """unknown_kid_refetch_s is 1 here: wait it out, so the next unknown kid may refetch."""
    time.sleep(1.2)


def test_a_rotated_key_is_accepted_on_its_first_request(remote_gateway, signers, idp):
    _, url = idp
    before = control(url, jwks=only(signers, "rsa-2048", "rsa-4096"))["fetches"]
    past_the_refetch_bound()
    rotated = sign(signers, claims(), kid="rsa-4096")
    # The request that brings the new kid waits for the refetch: no 401, no retry needed
    # (a Power Automate flow does not retry a 401).
    first = call(remote_gateway, rotated)
    assert first.status_code == 200, first.text
    # Fetched at once (the tick is brought forward), not at the next one-second tick.
    assert first.elapsed.total_seconds() < 0.9
    assert control(url)["fetches"] == before + 1, "one refetch"
    assert call(remote_gateway, rotated).status_code == 200


def test_a_withdrawn_key_stops_its_cached_tokens(remote_gateway, signers, idp):
    _, url = idp
    control(url, jwks=only(signers, "rsa-2048", "rsa-4096"))
    past_the_refetch_bound()
    cached = sign(signers, claims(), kid="rsa-4096")
    assert call(remote_gateway, cached).status_code == 200
    # rsa-4096 is compromised: the provider withdraws it. The next refetch (brought by an
    # unknown kid here) drops it, and the token verified with it is refused long before exp.
    control(url, jwks=only(signers, "rsa-2048"))
    past_the_refetch_bound()
    assert call(remote_gateway, unpublished(signers)).status_code == 401
    refused = call(remote_gateway, cached)
    assert refused.status_code == 401
    assert "signing key not found" in refused.json()["message"]
    assert call(remote_gateway, sign(signers, claims(), kid="rsa-2048")).status_code == 200


def test_unusable_keys_of_the_set_are_skipped_not_fatal(remote_gateway, signers, idp):
    _, url = idp
    p521 = ec.generate_private_key(ec.SECP521R1())
    odd = [
        {**json.loads(ECAlgorithm.to_jwk(p521.public_key())), "kid": "p-521"},
        {"kty": "oct", "kid": "secret", "k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE"},
        {"kty": "PQC", "kid": "next-year"},
    ]
    keys = only(signers, "rsa-2048", "rsa-3072")["keys"]
    control(url, jwks={"keys": odd + keys})
    past_the_refetch_bound()
    token = sign(signers, claims(), kid="rsa-3072")
    assert call(remote_gateway, token).status_code == 200
    log = remote_gateway.log()
    assert "skipped signing key keys[0] (kid p-521)" in log
    assert "skipped signing key keys[1] (kid secret)" in log
    assert "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE" not in log


def test_a_failing_provider_keeps_the_last_good_keys(remote_gateway, signers, idp):
    _, url = idp
    control(url, jwks=only(signers, "rsa-2048"))
    before = control(url, fail=True)["fetches"]
    past_the_refetch_bound()
    # An unknown kid makes tollgate ask again (at most once a second here); the answer fails,
    # and the request that waited for it is refused.
    assert call(remote_gateway, unpublished(signers)).status_code == 401
    assert eventually(lambda: requests.get(f"{url}/_control", timeout=5).json()["fetches"]
                      > before)
    token = sign(signers, claims(), kid="rsa-2048")
    assert call(remote_gateway, token).status_code == 200
    assert "keeping the last good set" in remote_gateway.log()
    control(url, fail=False)


def test_a_missing_cluster_is_logged_once_not_every_second(workdir, backend, signers):
    plugin = {
        "products": {"partner": {}},
        "consumers": [{"id": "contoso-portal", "product": "partner", "jwt_client_ids": [CLIENT]}],
        "jwt": {
            "audiences": [AUDIENCE],
            "jwks_uri": {"url": "https://idp.test/keys", "cluster": "no-such-cluster"},
        },
        "operations": [{"name": "jwt-op", "path": "/jwt", "auth": "jwt"}],
    }
    envoy_config = stack.render_envoy_config(
        plugin, listen_port=stack.free_port(), admin_port=stack.free_port(),
        backend_port=backend.port)
    envoy = stack.Envoy(workdir, envoy_config, name="missing-cluster")
    try:
        # Attempts back off (1 s, 2 s, 4 s ...); the failure is logged once a minute at most.
        time.sleep(5)
        token = sign(signers, claims(), kid="rsa-2048")
        refused = call(envoy, token)
        assert refused.status_code == 401, "at once: no fetch may start, none is waited for"
        assert refused.elapsed.total_seconds() < 0.5
        log = envoy.log()
        # One line per VM (Envoy configures one on the main thread as well as each worker's).
        vms = log.count("configuration loaded")
        assert log.count("not callable for signing keys") == vms
    finally:
        envoy.stop()
    assert "panicked" not in envoy.log()
