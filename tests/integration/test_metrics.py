"""Usage analytics on Envoy's /stats/prometheus after a known mix of requests."""

from __future__ import annotations

import re
import secrets
import time

import pytest
import requests

from conftest import sha256_ref, start_gateway
from tokens import Signers, claims, sign, ISSUER, AUDIENCE, CLIENT

KEY_HEADER = "Ocp-Apim-Subscription-Key"
KEYS = {"invoice-flow": secrets.token_hex(16), "tiny": secrets.token_hex(16)}


@pytest.fixture(scope="module")
def signers() -> Signers:
    return Signers()


@pytest.fixture(scope="module")
def metered(workdir, backend, signers):
    plugin = {
        "products": {"starter": {}, "partner": {},
                     "tiny": {"rate_limit": {"calls": 2, "renewal_period_s": 60}}},
        "consumers": [
            {"id": "invoice-flow", "product": "starter", "keys": [sha256_ref(KEYS["invoice-flow"])]},
            {"id": "tiny", "product": "tiny", "keys": [sha256_ref(KEYS["tiny"])]},
            {"id": "contoso-portal", "product": "partner", "jwt_client_ids": [CLIENT]},
        ],
        "jwt": {"issuers": [ISSUER], "audiences": [AUDIENCE], "jwks": signers.jwks},
        "operations": [
            {"name": "validate", "methods": ["POST"], "path": "/validate",
             "rewrite": "/api/v1/validate"},
            {"name": "admin", "path_prefix": "/admin", "products": ["partner"]},
            {"name": "lookup", "methods": ["GET"], "path": "/lookup",
             "rewrite": "/status/404"},
            {"name": "jwt-op", "path": "/jwt", "auth": "jwt"},
        ],
    }
    envoy = start_gateway(workdir, backend, plugin, "metered")
    yield envoy
    envoy.stop()


def prometheus(envoy) -> str:
    return requests.get(f"{envoy.admin}/stats/prometheus", timeout=5).text


def series(text: str, name: str) -> dict[tuple, float]:
    """{(("consumer", ...), ("operation", ...), ...): value} for one metric name."""
    found = {}
    for match in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, re.M):
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(1))))
        found[labels] = float(match.group(2))
    return found


def requests_total(text: str) -> dict[tuple, float]:
    return {tuple(v for _, v in labels): value
            for labels, value in series(text, "tollgate_requests_total").items()}


def test_known_mix_shows_exact_counts(metered, signers):
    key = {KEY_HEADER: KEYS["invoice-flow"]}
    url = metered.url
    for _ in range(3):
        assert requests.post(f"{url}/validate", json={}, headers=key, timeout=10).status_code == 200
    for _ in range(2):
        assert requests.post(f"{url}/validate", json={}, timeout=10).status_code == 401
    assert requests.post(f"{url}/validate", headers={KEY_HEADER: "wrong"}, timeout=10).status_code == 401
    for _ in range(2):
        assert requests.get(f"{url}/admin/x", headers=key, timeout=10).status_code == 403
    statuses = [requests.post(f"{url}/validate", headers={KEY_HEADER: KEYS["tiny"]},
                              timeout=10).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert requests.get(f"{url}/nowhere", timeout=10).status_code == 404
    # The backend answers 404 there: an upstream 4xx.
    assert requests.get(f"{url}/lookup", headers=key, timeout=10).status_code == 404
    token = sign(signers, claims())
    assert requests.get(f"{url}/jwt", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).status_code == 200
    assert requests.get(f"{url}/jwt", headers={"Authorization": f"Bearer {token}x"},
                        timeout=10).status_code == 401

    counts = requests_total(prometheus(metered))
    # Labels sorted by name: consumer, operation, outcome.
    expected = {
        ("invoice-flow", "validate", "allowed"): 3,
        ("-", "validate", "missing_credential"): 2,
        ("-", "validate", "invalid_credential"): 1,
        ("invoice-flow", "admin", "forbidden"): 2,
        ("tiny", "validate", "allowed"): 2,
        ("tiny", "validate", "rate_limited"): 2,
        ("-", "-", "no_operation"): 1,
        ("invoice-flow", "lookup", "allowed"): 1,
        ("contoso-portal", "jwt-op", "allowed"): 1,
        ("-", "jwt-op", "invalid_credential"): 1,
    }
    for labels, value in expected.items():
        assert counts.get(labels) == value, (labels, counts.get(labels))
    # Nothing else was counted.
    assert sum(counts.values()) == sum(expected.values())

    # Latency samples for forwarded requests only; 4xx from the upstream counted.
    deadline = time.monotonic() + 15  # histograms reach the admin API at a stats flush
    while True:
        text = prometheus(metered)
        latency = {dict(labels)["operation"]: value for labels, value in
                   series(text, "tollgate_upstream_latency_ms_count").items()}
        if latency.get("validate") == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert latency.get("validate") == 5   # 3 invoice-flow + 2 tiny
    assert latency.get("lookup") == 1
    assert latency.get("admin", 0) == 0   # only denials there
    upstream = {tuple(v for _, v in labels): value for labels, value in
                series(text, "tollgate_upstream_responses_total").items()}
    assert upstream.get(("4xx", "lookup")) == 1
    assert upstream.get(("4xx", "validate")) == 0

    # No key or token anywhere in the metrics.
    for secret in [*KEYS.values(), token, token.split(".")[2]]:
        assert secret not in text


def test_each_denial_is_logged_once_without_secrets(metered):
    log = metered.log()
    denied = [line for line in log.splitlines() if "tollgate: denied" in line]
    assert any("outcome=rate_limited" in line and "consumer=tiny" in line for line in denied)
    assert any("operation=admin" in line and "outcome=forbidden" in line for line in denied)
    for secret in KEYS.values():
        assert secret not in log


@pytest.fixture(scope="module")
def dynamic_metered(workdir, backend, signers):
    """Unknown JWT clients become consumers `jwt:<client>`, each with series of its own."""
    plugin = {
        "products": {"guest": {}},
        "jwt": {"issuers": [ISSUER], "audiences": [AUDIENCE], "jwks": signers.jwks,
                "default_product": "guest", "max_dynamic_consumers": 4},
        "operations": [{"name": "open-jwt", "path": "/jwt", "auth": "jwt"}],
    }
    envoy = start_gateway(workdir, backend, plugin, "dynamic-metered")
    yield envoy
    envoy.stop()


def test_dynamic_consumers_get_series_of_their_own(dynamic_metered, signers):
    """The configured series and a dynamic consumer's series (which the native module records
    another way: docs/operations.md) show as one metric with the same labels."""
    def call(client: str) -> int:
        token = sign(signers, claims(azp=client))
        return requests.get(f"{dynamic_metered.url}/jwt", timeout=10,
                            headers={"Authorization": f"Bearer {token}"}).status_code

    assert [call("app-a"), call("app-a"), call("app-b")] == [200, 200, 200]
    text = prometheus(dynamic_metered)
    counts = requests_total(text)
    assert counts.get(("jwt:app-a", "open-jwt", "allowed")) == 2, counts
    assert counts.get(("jwt:app-b", "open-jwt", "allowed")) == 1, counts
    # Configured, at 0 from the start.
    assert counts.get(("-", "open-jwt", "missing_credential")) == 0, counts
    assert counts.get(("jwt:*", "open-jwt", "allowed")) == 0, counts
    assert len(re.findall(r"^# TYPE tollgate_requests_total counter$", text, re.M)) == 1
