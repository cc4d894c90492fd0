"""The response cache through a real Envoy with two worker threads: hits spare the backend, one
consumer never sees another's entry, entries expire, `no-store` is honoured, hits are still
counted against the rate limit, and a flood of distinct URLs leaves memory within the bound."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests

import stack
from conftest import sha256_ref, start_gateway
from http_helpers import tollgate_metric

KEY_HEADER = "Ocp-Apim-Subscription-Key"
KEYS = {name: secrets.token_hex(16) for name in ("alpha", "beta", "tight")}
TTL_S = 2
MAX_BYTES = 4 * 1024 * 1024
FLOOD_ENTRY_BYTES = 2048
FLOOD_BODY = "x" * 1500
FLOOD_REQUESTS = int(os.environ.get("TOLLGATE_CACHE_FLOOD", "100000"))


def plugin() -> dict:
    return {
        "products": {
            "open": {},
            "tight": {"rate_limit": {"calls": 3, "renewal_period_s": 60}},
        },
        "consumers": [
            {"id": "alpha", "product": "open", "keys": [sha256_ref(KEYS["alpha"])]},
            {"id": "beta", "product": "open", "keys": [sha256_ref(KEYS["beta"])]},
            {"id": "tight", "product": "tight", "keys": [sha256_ref(KEYS["tight"])]},
        ],
        "operations": [
            {"name": "counted", "methods": ["GET"], "path_template": "/counted/{name}",
             "request_headers": {"set": {"x-consumer-id": "{consumer}"}},
             "cache": {"ttl_s": TTL_S, "vary_by_query": ["q"], "max_entry_bytes": 4096}},
            {"name": "flood", "methods": ["GET"], "path_prefix": "/flood", "auth": "none",
             "cache": {"ttl_s": 600, "vary_by_query": ["q"], "per_consumer": False,
                       "max_entry_bytes": FLOOD_ENTRY_BYTES}},
        ],
        "cache_limits": {"max_bytes": MAX_BYTES},
    }


@pytest.fixture(scope="module")
def cached_gateway(workdir, backend):
    envoy = start_gateway(workdir, backend, plugin(), "cached", concurrency=2)
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


@pytest.fixture(scope="module")
def flood_gateway(workdir, backend):
    """`/flood` is answered by Envoy's router itself (a direct response passes through the
    filter like an upstream's), so a flood of misses measures the cache, not the backend."""
    config = stack.render_envoy_config(
        plugin(), listen_port=stack.free_port(), admin_port=stack.free_port(),
        backend_port=backend.port,
    )
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    manager["route_config"]["virtual_hosts"][0]["routes"].insert(0, {
        "match": {"prefix": "/flood"},
        "direct_response": {"status": 200, "body": {"inline_string": FLOOD_BODY}},
    })
    envoy = stack.Envoy(workdir, config, name="cache-flood", concurrency=2)
    yield envoy
    envoy.stop()
    assert "panicked" not in envoy.log()


def get(envoy, name: str, key: str, **kwargs) -> requests.Response:
    headers = {KEY_HEADER: KEYS[key], **kwargs.pop("headers", {})}
    return requests.get(f"{envoy.url}/counted/{name}", headers=headers, timeout=5, **kwargs)


def backend_calls(backend, name: str) -> int:
    return requests.get(f"http://127.0.0.1:{backend.port}/counted/{name}/calls",
                        timeout=5).json()["calls"]


def test_a_second_identical_get_is_answered_by_the_cache(cached_gateway, backend):
    name = f"hit-{secrets.token_hex(4)}"
    first = get(cached_gateway, name, "alpha")
    assert first.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    assert backend_calls(backend, name) == 1
    second = get(cached_gateway, name, "alpha")
    assert second.status_code == 200
    assert second.headers["x-cache"] == "HIT"
    assert int(second.headers["age"]) <= TTL_S
    assert second.json() == first.json()
    assert backend_calls(backend, name) == 1, "the hit never reached the backend"
    # Ten more from fresh connections (either worker): still one backend call.
    for _ in range(10):
        assert get(cached_gateway, name, "alpha").headers["x-cache"] == "HIT"
    assert backend_calls(backend, name) == 1


def test_another_consumer_misses_and_never_gets_the_first_ones_body(cached_gateway, backend):
    name = f"own-{secrets.token_hex(4)}"
    mine = get(cached_gateway, name, "alpha")
    assert mine.json()["consumer"] == "alpha"
    theirs = get(cached_gateway, name, "beta")
    assert theirs.headers["x-cache"] == "MISS"
    assert theirs.json()["consumer"] == "beta"
    assert get(cached_gateway, name, "beta").json()["consumer"] == "beta"
    assert get(cached_gateway, name, "alpha").json()["consumer"] == "alpha"
    assert backend_calls(backend, name) == 2


def test_after_ttl_the_backend_is_called_again(cached_gateway, backend):
    name = f"ttl-{secrets.token_hex(4)}"
    get(cached_gateway, name, "alpha")
    assert get(cached_gateway, name, "alpha").headers["x-cache"] == "HIT"
    time.sleep(TTL_S + 0.2)
    again = get(cached_gateway, name, "alpha")
    assert again.headers["x-cache"] == "MISS"
    assert backend_calls(backend, name) == 2


def test_no_store_answers_and_no_cache_requests_go_upstream(cached_gateway, backend):
    name = f"nostore-{secrets.token_hex(4)}"
    for _ in range(3):
        answer = get(cached_gateway, name, "alpha", params={"cache_control": "no-store"})
        assert answer.headers["x-cache"] == "MISS"
    assert backend_calls(backend, name) == 3
    name = f"nocache-{secrets.token_hex(4)}"
    get(cached_gateway, name, "alpha")
    refreshed = get(cached_gateway, name, "alpha", headers={"Cache-Control": "no-cache"})
    assert refreshed.headers["x-cache"] == "MISS"
    assert refreshed.json()["calls"] == 2
    # The refreshed answer is the one now served.
    assert get(cached_gateway, name, "alpha").json()["calls"] == 2


def test_head_is_answered_from_the_get_entry(cached_gateway, backend):
    name = f"head-{secrets.token_hex(4)}"
    whole = get(cached_gateway, name, "alpha")
    head = requests.head(f"{cached_gateway.url}/counted/{name}",
                         headers={KEY_HEADER: KEYS["alpha"]}, timeout=5)
    assert head.status_code == 200
    assert head.headers["x-cache"] == "HIT"
    assert head.content == b""
    # A HEAD answers with the GET's headers, its length included (RFC 9110 9.3.2).
    assert head.headers.get("content-length") == whole.headers["content-length"], head.headers
    assert backend_calls(backend, name) == 1


def test_a_hit_still_counts_against_the_rate_limit(cached_gateway, backend):
    name = f"limit-{secrets.token_hex(4)}"
    answers = [get(cached_gateway, name, "tight") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("x-cache") for a in answers[:3]] == ["MISS", "HIT", "HIT"]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert backend_calls(backend, name) == 1


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def counter(envoy, name: str) -> int:
    """A series' value (a counter, or a gauge) as /stats/prometheus shows it, 0 while it does
    not exist."""
    return int(tollgate_metric(envoy, name) or 0)


def test_a_flood_of_distinct_query_strings_stays_within_the_bound(flood_gateway, tmp_path):
    envoy = flood_gateway
    assert requests.get(f"{envoy.url}/flood?q=warm", timeout=5).headers["x-cache"] == "MISS"
    assert requests.get(f"{envoy.url}/flood?q=warm", timeout=5).headers["x-cache"] == "HIT"
    before = rss_kib(envoy.process.pid)
    started = time.monotonic()
    count_script = tmp_path / "counted.lua"
    per_thread = FLOOD_REQUESTS // 2
    count_script.write_text(
        "local n = 0\n"
        "local id = 0\n"
        "setup = function(thread) id = id + 1; thread:set('tid', id) end\n"
        "request = function()\n"
        "  n = n + 1\n"
        f"  if n > {per_thread} then wrk.thread:stop() end\n"
        "  return wrk.format('GET', '/flood?q=' .. tid .. '-' .. n)\n"
        "end\n"
    )
    # wrk keeps running for its duration after its threads stop: end it once every URL was
    # asked (each one a miss, counted per worker).
    wrk = subprocess.Popen(["wrk", "-t2", "-c16", "-d300s", "-s", str(count_script), envoy.url],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stack.wait_until(lambda: counter(envoy, "tollgate_cache_misses_total.op=flood")
                         >= FLOOD_REQUESTS, "the flood", timeout_s=float(os.environ.get("TOLLGATE_CACHE_FLOOD_S", "240")))
    except RuntimeError:
        raise AssertionError(requests.get(f"{envoy.admin}/stats?filter=tollgate_cache",
                                          timeout=5).text) from None
    finally:
        wrk.terminate()
        wrk.wait(timeout=10)
    elapsed = time.monotonic() - started
    after = rss_kib(envoy.process.pid)
    stores = counter(envoy, "tollgate_cache_stores_total.op=flood")
    evictions = counter(envoy, "tollgate_cache_evictions_total.op=flood")
    in_use = counter(envoy, "tollgate_cache_bytes")
    print(f"\ncache flood: {FLOOD_REQUESTS} distinct URLs in {elapsed:.1f} s; {stores} stored; "
          f"RSS {before} KiB before, {after} KiB after (+{after - before} KiB); "
          f"{evictions} evictions; entries {in_use} bytes (bound {MAX_BYTES})")
    assert stores >= FLOOD_REQUESTS * 0.9, stores
    assert in_use <= MAX_BYTES
    # The bound plus a stated overhead: the slots' keys and the allocator's slack (8 MiB).
    assert (after - before) * 1024 <= MAX_BYTES + 8 * 1024 * 1024, (before, after)
