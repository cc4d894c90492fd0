"""Signing keys fetched from an identity provider (OpenID discovery, then jwks_uri) through an
Envoy cluster: first fetch, rotation picked up on an unknown kid, last good set kept when the
provider fails."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

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


def test_a_rotated_key_is_fetched_on_its_first_unknown_kid(remote_gateway, signers, idp):
    _, url = idp
    control(url, jwks=only(signers, "rsa-2048", "rsa-4096"))
    rotated = sign(signers, claims(), kid="rsa-4096")
    first = call(remote_gateway, rotated)
    assert first.status_code in (200, 401)
    if first.status_code == 401:
        assert "signing key not found" in first.json()["message"]
    assert eventually(lambda: call(remote_gateway, rotated).status_code == 200)


def test_a_failing_provider_keeps_the_last_good_keys(remote_gateway, signers, idp):
    _, url = idp
    before = control(url, fail=True)["fetches"]
    # An unknown kid makes tollgate ask again (at most once a second here); the answer fails.
    unknown = sign(signers, claims(), kid="rsa-3072")
    assert call(remote_gateway, unknown).status_code == 401
    assert eventually(lambda: requests.get(f"{url}/_control", timeout=5).json()["fetches"]
                      > before)
    token = sign(signers, claims(), kid="rsa-2048")
    assert call(remote_gateway, token).status_code == 200
    assert "keeping the last good set" in remote_gateway.log()
    control(url, fail=False)
