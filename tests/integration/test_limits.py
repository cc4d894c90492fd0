"""Rate limits and quotas through a real Envoy with two worker threads."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import sha256_ref, start_gateway
from http_helpers import assert_exact_burst, seen

KEY_HEADER = "Ocp-Apim-Subscription-Key"
KEYS = {name: secrets.token_hex(16) for name in ("burst-a", "burst-b", "short", "daily")}


@pytest.fixture(scope="module")
def limited_gateway(workdir, backend):
    plugin = {
        "products": {
            "burst": {"rate_limit": {"calls": 25, "renewal_period_s": 60}},
            "short": {"rate_limit": {"calls": 3, "renewal_period_s": 2}},
            "daily": {"quota": {"calls": 10, "renewal_period_s": 86400}},
        },
        "consumers": [
            {"id": "burst-a", "product": "burst", "keys": [sha256_ref(KEYS["burst-a"])]},
            {"id": "burst-b", "product": "burst", "keys": [sha256_ref(KEYS["burst-b"])]},
            {"id": "short", "product": "short", "keys": [sha256_ref(KEYS["short"])]},
            {"id": "daily", "product": "daily", "keys": [sha256_ref(KEYS["daily"])]},
        ],
        "operations": [{"name": "echo", "path_prefix": "/echo"}],
    }
    envoy = start_gateway(workdir, backend, plugin, "limited", concurrency=2)
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


def get(gateway, consumer: str) -> requests.Response:
    # A new connection per call, so concurrent calls spread over both workers.
    return requests.get(f"{gateway.url}/echo", headers={KEY_HEADER: KEYS[consumer],
                                                         "Connection": "close"}, timeout=30)


def test_a_concurrent_burst_admits_exactly_the_limit(limited_gateway):
    with ThreadPoolExecutor(max_workers=60) as pool:
        responses = list(pool.map(lambda _: get(limited_gateway, "burst-a"), range(60)))
    assert_exact_burst(responses, admitted=25, window_s=60)
    # Both workers took part (so the count held across threads, not within one).
    stats = requests.get(f"{limited_gateway.admin}/stats?filter=worker_.\\.downstream_cx_total",
                         timeout=5).text
    per_worker = [int(line.rsplit(": ", 1)[1]) for line in stats.splitlines() if ": " in line]
    assert len(per_worker) == 2 and all(count > 0 for count in per_worker), stats


def test_consumers_of_one_product_do_not_share_a_counter(limited_gateway):
    # burst-a is exhausted by the test above (60 s window); burst-b is untouched.
    assert get(limited_gateway, "burst-a").status_code == 429
    assert get(limited_gateway, "burst-b").status_code == 200


def test_headers_count_down_and_the_window_reopens(limited_gateway):
    remaining = []
    for _ in range(3):
        response = get(limited_gateway, "short")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "3"
        assert 1 <= int(response.headers["x-ratelimit-reset"]) <= 2
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    assert remaining == [2, 1, 0]
    refused = get(limited_gateway, "short")
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 2
    time.sleep(retry_after + 0.2)
    again = get(limited_gateway, "short")
    assert again.status_code == 200
    assert again.headers["x-ratelimit-remaining"] == "2"


def test_daily_quota_points_at_the_next_utc_midnight(limited_gateway):
    for expected_remaining in range(9, -1, -1):
        response = get(limited_gateway, "daily")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining"] == str(expected_remaining)
    response = get(limited_gateway, "daily")
    assert response.status_code == 403
    retry_after = int(response.headers["retry-after"])
    to_midnight = 86400 - int(time.time()) % 86400
    assert abs(retry_after - to_midnight) <= 2, (retry_after, to_midnight)
    hours, minutes, seconds = retry_after // 3600, retry_after // 60 % 60, retry_after % 60
    assert response.json() == {
        "statusCode": 403,
        "message": "Out of call volume quota. Quota will be replenished in "
                   f"{hours:02}:{minutes:02}:{seconds:02}."}
    # Refused calls are not counted: the quota stays at its limit, not beyond.
    assert get(limited_gateway, "daily").status_code == 403


def test_a_throttled_request_never_reaches_the_backend(limited_gateway):
    response = get(limited_gateway, "burst-a")
    assert response.status_code == 429
    assert "received" not in response.text
    assert seen(get(limited_gateway, "burst-b"))["path"] == "/echo"


@pytest.fixture(scope="module")
def dynamic_gateway(workdir, backend):
    from tokens import AUDIENCE, Signers
    signers = Signers()
    plugin = {
        "products": {"guest": {"rate_limit": {"calls": 2, "renewal_period_s": 60}}},
        "consumers": [{"id": "portal", "product": "guest", "jwt_client_ids": ["known-app"]}],
        "jwt": {"audiences": [AUDIENCE], "jwks": signers.jwks, "default_product": "guest",
                "max_dynamic_consumers": 8},
        "operations": [{"name": "echo", "path_prefix": "/echo", "auth": "jwt",
                        "request_headers": {"set": {"x-consumer-id": "{consumer}"}}}],
    }
    envoy = start_gateway(workdir, backend, plugin, "dynamic", concurrency=2)
    yield envoy, signers
    envoy.stop()
    assert "panicked" not in envoy.log()


def test_dynamic_jwt_consumers_count_on_their_own_and_the_pool_is_bounded(dynamic_gateway):
    from tokens import claims, sign
    envoy, signers = dynamic_gateway

    def call(client: str) -> requests.Response:
        token = sign(signers, claims(azp=client))
        return requests.get(f"{envoy.url}/echo", headers={"Authorization": f"Bearer {token}",
                                                          "Connection": "close"}, timeout=10)

    # Each unknown client is its own consumer jwt:<client> with the default product's limit.
    first = [call("app-a").status_code for _ in range(3)]
    assert first == [200, 200, 429]
    response = call("app-b")
    assert response.status_code == 200
    assert seen(response)["headers"].count(["x-consumer-id", "jwt:app-b"]) == 1
    # A pool of 8 slots, 2 held by app-a and app-b (their windows are still open): of 40 new
    # clients exactly 6 get a slot; the rest are refused with 429, and nothing more is stored.
    responses = [call(f"app-{n}") for n in range(40)]
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 6, statuses
    assert statuses.count(429) == 34, statuses
    refused = next(r for r in responses if r.status_code == 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
