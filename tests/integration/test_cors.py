"""CORS (APIM's `cors` policy) through a real Envoy: preflights answered by tollgate before any
key is asked for, and the CORS headers on every answer a browser app must be able to read,
tollgate's own APIM errors included."""

from __future__ import annotations

import copy
import re
import secrets

import pytest
import requests

from conftest import Keys, plugin_config, sha256_ref, start_gateway
from http_helpers import header_values, upstream_requests

KEY_HEADER = "Ocp-Apim-Subscription-Key"
PORTAL = "https://make.powerautomate.com"
POWER_APP = "https://contoso.powerapps.com"
OTHER_APP = "https://apps.contoso.example"
EVIL = "https://evil.example"
TINY_KEY = secrets.token_hex(16)
MISSING = ("Access denied due to missing subscription key. Make sure to include subscription "
           "key when making requests to an API.")


def cors_config() -> dict:
    """The shared test API with a top-level section for Power Platform, and per operation: `items`
    its own section (another app), `health` none (`null`), `files` (any method, keyed) its own
    section that leaves unmatched preflights to the pipeline. A `tiny` consumer for a 429, a body
    limit on `validate` for a 413."""
    config = copy.deepcopy(plugin_config())
    config["cors"] = {
        "allowed_origins": [PORTAL, "https://*.powerapps.com"],
        "allowed_methods": ["GET", "POST"],
        "allowed_headers": ["content-type", KEY_HEADER],
        "expose_headers": ["x-ratelimit-remaining", "x-served-by"],
        "max_age_s": 600,
    }
    config["products"]["tiny"] = {"rate_limit": {"calls": 1, "renewal_period_s": 60}}
    config["consumers"].append({"id": "tiny", "product": "tiny", "keys": [sha256_ref(TINY_KEY)]})
    operations = {op["name"]: op for op in config["operations"]}
    operations["validate"]["products"].append("tiny")
    operations["validate"]["max_request_body_bytes"] = 4096
    operations["items"]["cors"] = {"allowed_origins": [OTHER_APP]}
    operations["health"]["cors"] = None
    config["operations"].append({
        "name": "files", "path_prefix": "/files",
        "cors": {"allowed_origins": [OTHER_APP], "terminate_unmatched": False},
    })
    return config


@pytest.fixture(scope="module")
def api(workdir, backend):
    envoy = start_gateway(workdir, backend, cors_config(), "gateway-cors")
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log(), "the filter panicked during the run"


def preflight(api, path: str, origin: str, method: str = "POST",
              headers: str | None = "content-type,ocp-apim-subscription-key"):
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return requests.options(f"{api.url}{path}", headers=asked, timeout=10)


def cors_headers(response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()
            if name.lower().startswith("access-control-")}


def varies_by_origin(response) -> bool:
    return "origin" in [v.strip().lower() for v in response.headers.get("vary", "").split(",")]


def preflights_counted(api, operation: str) -> float:
    text = requests.get(f"{api.admin}/stats/prometheus", timeout=5).text
    pattern = (r'^tollgate_requests_total\{(?=[^}]*operation="%s")(?=[^}]*consumer="-")'
               r'(?=[^}]*outcome="preflight")[^}]*\} (\S+)$' % re.escape(operation))
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else -1.0


def test_a_browser_preflight_to_a_keyed_operation_is_answered_without_a_key(api):
    before = upstream_requests(api)
    counted = preflights_counted(api, "validate")
    response = preflight(api, "/validate", PORTAL)
    assert response.status_code == 200
    assert response.content == b""
    assert cors_headers(response) == {
        "access-control-allow-origin": PORTAL,
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": "content-type, ocp-apim-subscription-key",
        "access-control-max-age": "600",
    }
    assert response.headers["vary"] == "Origin"
    assert "content-type" not in response.headers
    assert upstream_requests(api) == before, "the backend saw nothing"
    assert preflights_counted(api, "validate") == counted + 1


def test_a_wildcard_origin_matches_subdomains_only(api):
    for origin in (POWER_APP, "https://a.b.powerapps.com"):
        response = preflight(api, "/validate", origin)
        assert response.headers.get("access-control-allow-origin") == origin
    for origin in ("https://powerapps.com", "https://evilpowerapps.com",
                   "https://x.powerapps.com.evil.net", "http://x.powerapps.com", "null"):
        response = preflight(api, "/validate", origin)
        assert response.status_code == 200
        assert cors_headers(response) == {}, origin


def test_a_preflight_that_does_not_match_gets_an_empty_200_without_cors_headers(api):
    before = upstream_requests(api)
    for response in (
        preflight(api, "/validate", EVIL),                       # origin
        preflight(api, "/validate", PORTAL, headers="x-debug"),  # a header
        preflight(api, "/v1/items", PORTAL, method="GET"),       # not items' origin
        preflight(api, "/validate", PORTAL, method="DELETE"),    # no such operation
        preflight(api, "/nowhere", PORTAL),                      # no operation at all
    ):
        assert response.status_code == 200, response.text
        assert response.content == b""
        assert cors_headers(response) == {}
    assert upstream_requests(api) == before
    assert preflights_counted(api, "-") >= 2, "counted without an operation"


def test_an_operations_own_section_and_null(api):
    response = preflight(api, "/v1/items", OTHER_APP, method="GET", headers=None)
    assert cors_headers(response) == {
        "access-control-allow-origin": OTHER_APP,
        "access-control-allow-methods": "GET, POST",
    }
    # `health` has none: its preflight is the top level's empty 200, its answers carry none.
    response = preflight(api, "/healthz", PORTAL, method="GET", headers=None)
    assert (response.status_code, response.content, cors_headers(response)) == (200, b"", {})
    response = requests.get(f"{api.url}/healthz", headers={"Origin": PORTAL}, timeout=10)
    assert response.status_code == 200
    assert cors_headers(response) == {}
    assert not varies_by_origin(response)


def test_terminate_unmatched_false_sends_the_preflight_through_the_pipeline(api):
    before = upstream_requests(api)
    response = preflight(api, "/files/a", PORTAL)
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": MISSING}
    assert cors_headers(response) == {}, "not an origin of this operation"
    assert upstream_requests(api) == before
    # Its own origin's preflight is answered.
    response = preflight(api, "/files/a", OTHER_APP, headers=None)
    assert response.status_code == 200
    assert response.headers.get("access-control-allow-origin") == OTHER_APP


def test_a_cross_origin_401_carries_the_cors_headers(api):
    response = requests.post(f"{api.url}/validate", json={}, headers={"Origin": PORTAL},
                             timeout=10)
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": MISSING}
    assert response.headers["www-authenticate"].startswith("AzureApiManagementKey")
    assert response.headers["access-control-allow-origin"] == PORTAL
    assert response.headers["access-control-expose-headers"] == (
        "x-ratelimit-remaining, x-served-by")
    assert "access-control-allow-credentials" not in response.headers
    assert varies_by_origin(response)
    # From another origin: none (the browser keeps the answer from the page).
    response = requests.post(f"{api.url}/validate", json={}, headers={"Origin": EVIL},
                             timeout=10)
    assert response.status_code == 401
    assert cors_headers(response) == {}


def test_tollgates_other_denials_carry_them_too(api):
    origin = {"Origin": POWER_APP}
    response = requests.get(f"{api.url}/admin/users",
                            headers={**origin, KEY_HEADER: Keys.primary}, timeout=10)
    assert response.status_code == 403
    assert response.headers["access-control-allow-origin"] == POWER_APP
    response = requests.get(f"{api.url}/nowhere", headers=origin, timeout=10)
    assert response.status_code == 404, "no operation: the top level's section"
    assert response.headers["access-control-allow-origin"] == POWER_APP
    statuses = []
    for _ in range(2):
        response = requests.post(f"{api.url}/validate", json={},
                                 headers={**origin, KEY_HEADER: TINY_KEY}, timeout=10)
        statuses.append(response.status_code)
    assert statuses == [200, 429]
    assert response.headers["retry-after"]
    assert response.headers["access-control-allow-origin"] == POWER_APP
    assert varies_by_origin(response)
    response = requests.post(f"{api.url}/validate", data=b"x" * 5000,
                             headers={**origin, "Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == POWER_APP


def test_an_admitted_cross_origin_request_carries_them_with_expose_headers(api):
    response = requests.post(f"{api.url}/validate", json={"invoice_id": "INV-1"},
                             headers={"Origin": PORTAL, KEY_HEADER: Keys.portal}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == PORTAL
    assert response.headers["access-control-expose-headers"] == (
        "x-ratelimit-remaining, x-served-by")
    assert response.headers["x-served-by"] == "tollgate/validate"
    assert varies_by_origin(response)
    # The backend sees the Origin as sent.
    assert header_values(response.json()["received"], "origin") == [PORTAL]
    # A request without Origin (a connector, a server) gets only the Vary.
    response = requests.post(f"{api.url}/validate", json={},
                             headers={KEY_HEADER: Keys.portal}, timeout=10)
    assert response.status_code == 200
    assert cors_headers(response) == {}
    assert varies_by_origin(response)
