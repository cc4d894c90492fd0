"""`make bench`: Envoy CPU per request, tollgate against Envoy passthrough and Envoy's native
filters, in one run.

Layout (2 cores): the measured Envoy runs with --concurrency 1 pinned to core 0; the load
generator (wrk) and the upstream (a second Envoy answering every request with a direct
response, far faster than any Python app) share core 1. Each configuration is measured for
the same time, in alternating rounds; the table reports requests/s and Envoy CPU per request
read from /proc (user + system time of the measured Envoy over the run / requests served).

Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

import stack

KEY_HEADER = "Ocp-Apim-Subscription-Key"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sha256_ref(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def tollgate_plugin(key: str, consumers: int) -> dict:
    """A subscription-key operation like the demo's, among `consumers` consumers."""
    others = [
        {"id": f"consumer-{n}", "product": "starter", "keys": [sha256_ref(f"other-{n}")]}
        for n in range(consumers - 1)
    ]
    return {
        "products": {"starter": {}},
        "consumers": [{"id": "bench", "product": "starter", "keys": [sha256_ref(key)]}, *others],
        "operations": [{
            "name": "items", "methods": ["GET"], "path_prefix": "/items",
            "auth": "subscription_key", "rewrite": "/api/v1/items",
            "request_headers": {"set": {"x-consumer-id": "{consumer}"}},
        }],
    }


def native_key_filter(key: str, consumers: int) -> dict:
    """Envoy's own api_key_auth: key from the header, client forwarded, key hidden."""
    credentials = [{"key": key, "client": "bench"}] + [
        {"key": f"other-{n}", "client": f"consumer-{n}"} for n in range(consumers - 1)
    ]
    return {
        "name": "envoy.filters.http.api_key_auth",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
            "credentials": credentials,
            "key_sources": [{"header": KEY_HEADER}],
            "forwarding": {"header": "x-consumer-id", "hide_credentials": True},
        },
    }


def measured_config(kind: str, key: str, consumers: int, upstream_port: int) -> dict:
    base = stack.render_envoy_config(
        tollgate_plugin(key, consumers), listen_port=stack.free_port(),
        admin_port=stack.free_port(), backend_port=upstream_port)
    hcm = base["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    tollgate, router = hcm["http_filters"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    if kind == "passthrough":
        hcm["http_filters"] = [router]
    elif kind == "native":
        hcm["http_filters"] = [native_key_filter(key, consumers), router]
        route["route"]["prefix_rewrite"] = "/api/v1/items"
    elif kind == "tollgate":
        hcm["http_filters"] = [tollgate, router]
    else:
        raise ValueError(kind)
    return base


def upstream_config(port: int, admin_port: int) -> dict:
    """An Envoy that answers 200 to everything: the fastest upstream at hand."""
    config = copy.deepcopy(stack.load_reference())
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = hcm["http_filters"][1:]
    hcm["route_config"]["virtual_hosts"][0]["routes"] = [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}
    ]
    config["static_resources"]["clusters"] = []
    return config


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command]


def run_wrk(url: str, key: str, seconds: int, connections: int) -> tuple[int, dict]:
    output = subprocess.run(
        pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                   "-H", f"{KEY_HEADER}: {key}", url]),
        capture_output=True, text=True, check=True).stdout
    requests_done = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} non-2xx responses:\n{output}")
    return requests_done, latency


class Measured:
    def __init__(self, workdir: Path, kind: str, key: str, consumers: int, upstream_port: int):
        self.kind = kind
        config = measured_config(kind, key, consumers, upstream_port)
        self.envoy = StartedEnvoy(workdir, config, f"bench-{kind}", core=0)
        self.samples: list[tuple[float, float, dict]] = []

    def round(self, key: str, seconds: int, connections: int):
        url = f"{self.envoy.url}/items/42"
        check = requests.get(url, headers={KEY_HEADER: key}, timeout=5)
        check.raise_for_status()
        before = cpu_seconds(self.envoy.pid)
        started = time.monotonic()
        done, latency = run_wrk(url, key, seconds, connections)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(self.envoy.pid) - before
        self.samples.append((done / elapsed, cpu / done * 1e6, latency))


class StartedEnvoy:
    """An Envoy pinned to one core, with --concurrency 1."""

    def __init__(self, workdir: Path, config: dict, name: str, core: int):
        import yaml

        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = (workdir / f"{name}.log").open("wb")
        self.process = subprocess.Popen(
            pinned(core, [stack.envoy_binary(), "-c", str(path), "--concurrency", "1",
                          "--base-id", str(stack.unique_base_id()), "-l", "error"]),
            stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
        admin = config["admin"]["address"]["socket_address"]["port_value"]
        self.url = f"http://127.0.0.1:{listener['port_value']}"
        stack.wait_until(
            lambda: requests.get(f"http://127.0.0.1:{admin}/ready", timeout=1).ok,
            name, process=self.process)

    def stop(self):
        stack.stop(self.process)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--consumers", type=int, default=1000)
    args = parser.parse_args()
    if not stack.WASM.exists():
        sys.exit(f"{stack.WASM} is missing: run `make build`")

    key = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as tmp:
        workdir = Path(tmp)
        upstream_port = stack.free_port()
        upstream = StartedEnvoy(workdir, upstream_config(upstream_port, stack.free_port()),
                                "upstream", core=1)
        kinds = ["passthrough", "native", "tollgate"]
        measured = [Measured(workdir, kind, key, args.consumers, upstream_port) for kind in kinds]
        try:
            for m in measured:  # warm-up round, not counted
                m.round(key, 2, args.connections)
                m.samples.clear()
            for _ in range(args.rounds):
                for m in measured:
                    m.round(key, args.seconds, args.connections)
        finally:
            for m in measured:
                m.envoy.stop()
            upstream.stop()

    base = measured[0].samples
    base_rps = median([s[0] for s in base])
    labels = {
        "passthrough": "Envoy passthrough (router only)",
        "native": "Envoy native api_key_auth (+ prefix_rewrite)",
        "tollgate": "tollgate: subscription key + identity header + rewrite",
    }
    print(f"\n{args.rounds} rounds x {args.seconds} s, wrk -t1 -c{args.connections}, "
          f"{args.consumers} consumers; measured Envoy --concurrency 1 on core 0, "
          f"wrk + upstream on core 1; medians (extra: of per-round differences)\n")
    print("| configuration | req/s | ratio | Envoy CPU µs/req | extra µs/req | p50 | p99 |")
    print("|---|---|---|---|---|---|---|")
    for m in measured:
        rps = median([s[0] for s in m.samples])
        cpu = median([s[1] for s in m.samples])
        latency = m.samples[len(m.samples) // 2][2]
        # The extra cost is taken round by round against the passthrough of the same round,
        # so a slow round (a busy neighbour on a shared host) does not skew the difference.
        deltas = [s[1] - b[1] for s, b in zip(m.samples, base)]
        extra = "—" if m.kind == "passthrough" else f"{median(deltas):+.1f}"
        print(f"| {labels[m.kind]} | {rps:,.0f} | {rps / base_rps:.2f} | {cpu:.1f} | {extra} "
              f"| {latency.get('50', '?')} | {latency.get('99', '?')} |")


if __name__ == "__main__":
    main()
