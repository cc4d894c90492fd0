"""`make bench`: Envoy CPU per request, tollgate against Envoy passthrough and Envoy's native
filters, in one run.

Layout (2 cores): the measured Envoy runs with --concurrency 1 pinned to core 0; the load
generator (wrk) and the upstream (a second Envoy answering every request with a direct
response, far faster than any Python app) share core 1. The configurations of a suite are
measured for the same time in alternating rounds, after a warm-up round; the table reports
medians of requests/s and of Envoy CPU per request read from /proc (user + system time of the
measured Envoy over the run / requests served), and the extra CPU against the passthrough of
the same round.

Suites:
  keys    subscription key: passthrough, native api_key_auth, tollgate
  limits  subscription key + a per-consumer rate limit never hit: passthrough, native
          api_key_auth + local_ratelimit keyed per consumer, tollgate
  jwt     RS256 bearer token: passthrough, native jwt_authn with and without its token cache,
          tollgate with one repeated token (cache hits) and a fresh token per request (misses)
  body    a 2 KB JSON POST: passthrough, tollgate's key operation without a transform, and the
          same operation with the demo's request transform (the body buffered, reshaped, sent)
  ipfilter  subscription key with and without an ip_filter of 5,000 prefixes (IPv4 and IPv6,
          none merging with another) that admits the caller: passthrough, native api_key_auth +
          RBAC with the same 5,000 prefixes as remote_ip principals, tollgate without a filter,
          with one of 10 prefixes and with the 5,000
  ready   start-up: Envoy to /ready with no module and with each module
  global  subscription key + a global rate limit (never hit) counted by tollgate-rls on Redis:
          passthrough, native api_key_auth + envoy.filters.http.ratelimit calling the same
          tollgate-rls (with the same limit override), tollgate; then tollgate-rls alone:
          ShouldRateLimit calls/s with the service pinned to core 0 (examples/load.rs)

--baseline-wasm PATH (repeatable) runs every tollgate row of a suite again with each such
module (earlier builds, say) in the same alternating rounds, so one table compares the old and
new modules against the same passthrough and native rows.

--native runs every tollgate row of a suite again with the native module
(target/native/libtollgate.so, an Envoy dynamic module: tools/stack.py's `to_native`, the same
plugin configuration), in the same rounds.

Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests
import yaml

import stack

KEY_HEADER = "Ocp-Apim-Subscription-Key"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ISSUER = "https://login.microsoftonline.com/bench-tenant/v2.0"
AUDIENCE = "api://bench"
CLIENT = "bench-client"

WRK_TOKEN_SCRIPT = """
local tokens = {}
for line in io.lines(os.getenv("TOLLGATE_BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
"""


def sha256_ref(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


# ---------------------------------------------------------------- Envoy configurations


def base_config(plugin: dict, upstream_port: int) -> dict:
    return stack.render_envoy_config(plugin, listen_port=stack.free_port(),
                                     admin_port=stack.free_port(), backend_port=upstream_port,
                                     on="wasm")


def http_filters(config: dict) -> dict:
    """The HTTP connection manager of the (single) listener."""
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]


def with_filters(config: dict, filters: list[dict], prefix_rewrite: str | None = None) -> dict:
    hcm = http_filters(config)
    router = hcm["http_filters"][-1]
    hcm["http_filters"] = [*filters, router]
    if prefix_rewrite:
        hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["prefix_rewrite"] = (
            prefix_rewrite)
    return config


def tollgate_filter(config: dict) -> dict:
    return http_filters(config)["http_filters"][0]


def key_plugin(key: str, consumers: int) -> dict:
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


def native_rate_limit_filter() -> dict:
    """local_ratelimit with one token bucket per consumer (descriptor from x-consumer-id,
    which api_key_auth sets before it), generous enough never to refuse."""
    bucket = {"max_tokens": 1_000_000_000, "tokens_per_fill": 1_000_000_000, "fill_interval": "60s"}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "per_consumer",
            "token_bucket": bucket,
            "filter_enabled": {"runtime_key": "rl_enabled",
                               "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "filter_enforced": {"runtime_key": "rl_enforced",
                                "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "descriptors": [{"entries": [{"key": "consumer", "value": "bench"}],
                             "token_bucket": bucket}],
        },
    }


def with_consumer_rate_limits(config: dict) -> dict:
    route = http_filters(config)["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    route["rate_limits"] = [{"actions": [{"request_headers": {
        "header_name": "x-consumer-id", "descriptor_key": "consumer"}}]}]
    return config


def service_tag_prefixes(count: int) -> list[str]:
    """`count` prefixes the size of a large service tag: four IPv4 /28s to one IPv6 /48, each
    apart from the next (so none merge and the filter searches `count` ranges), and the
    bench's own 127.0.0.1 in the middle of the list."""
    ipv4 = [f"20.{n >> 10 & 0xff}.{n >> 2 & 0xff}.{(n & 3) * 64}/28" for n in range(count * 4 // 5)]
    ipv6 = [f"2603:{0x1000 + (n >> 8):x}:{(n & 0xff) * 2:x}::/48" for n in range(count - len(ipv4) - 1)]
    prefixes = ipv4 + ipv6
    prefixes.insert(len(prefixes) // 2, "127.0.0.1/32")
    return prefixes


def native_rbac_filter(prefixes: list[str]) -> dict:
    """Envoy's own RBAC allowing the same prefixes, as remote_ip principals (the address Envoy
    computes for the client, as tollgate's source.address)."""
    principals = []
    for prefix in prefixes:
        address, length = prefix.split("/")
        principals.append({"remote_ip": {"address_prefix": address, "prefix_len": int(length)}})
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": {"service-tag": {
                "permissions": [{"any": True}],
                "principals": [{"or_ids": {"ids": principals}}]}}},
        },
    }


def jwt_plugin(jwks: dict) -> dict:
    return {
        "products": {"starter": {}},
        "consumers": [{"id": "bench", "product": "starter", "jwt_client_ids": [CLIENT]}],
        "jwt": {"issuers": [ISSUER], "audiences": [AUDIENCE], "algorithms": ["RS256"],
                "jwks": jwks, "claims_to_headers": {"oid": "x-user-oid"}},
        "operations": [{
            "name": "items", "methods": ["GET"], "path_prefix": "/items", "auth": "jwt",
            "request_headers": {"set": {"x-consumer-id": "{consumer}"}},
        }],
    }


def native_jwt_filter(jwks: dict, cache: bool) -> dict:
    provider = {
        "issuer": ISSUER, "audiences": [AUDIENCE], "forward": True,
        "local_jwks": {"inline_string": json.dumps(jwks)},
        "claim_to_headers": [{"header_name": "x-user-oid", "claim_name": "oid"}],
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 1000}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"entra": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "entra"}}],
        },
    }


def rls_cluster(config: dict, rls_port: int) -> dict:
    """The reference config's tollgate_rls cluster, aimed at the bench's tollgate-rls."""
    cluster = stack.cluster_named(config, stack.RLS_CLUSTER)
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"]["port_value"] = rls_port
    return config


def native_global_filters(key: str, consumers: int) -> list[dict]:
    """api_key_auth, then set_metadata holding the limit override, then Envoy's rate-limit
    filter calling tollgate-rls: the same descriptor and override tollgate sends."""
    return [
        native_key_filter(key, consumers),
        {"name": "envoy.filters.http.set_metadata",
         "typed_config": {
             "@type": "type.googleapis.com/envoy.extensions.filters.http.set_metadata.v3.Config",
             "metadata": [{"metadata_namespace": "tollgate", "value": {
                 "limit": {"requests_per_unit": 1_000_000_000, "unit": "MINUTE"}}}]}},
        {"name": "envoy.filters.http.ratelimit",
         "typed_config": {
             "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
             "domain": "tollgate", "timeout": "0.05s", "failure_mode_deny": False,
             "rate_limit_service": {
                 "grpc_service": {"envoy_grpc": {"cluster_name": stack.RLS_CLUSTER}},
                 "transport_api_version": "V3"}}},
    ]


def with_native_global_descriptor(config: dict) -> dict:
    route = http_filters(config)["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    route["rate_limits"] = [{
        "actions": [
            {"request_headers": {"header_name": "x-consumer-id", "descriptor_key": "consumer"}},
            {"generic_key": {"descriptor_key": "limit", "descriptor_value": "rate_limit"}},
        ],
        "limit": {"dynamic_metadata": {"metadata_key": {
            "key": "tollgate", "path": [{"key": "limit"}]}}},
    }]
    return config


def upstream_config(port: int, admin_port: int) -> dict:
    """An Envoy that answers 200 to everything: the fastest upstream at hand."""
    config = copy.deepcopy(stack.load_reference())
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    listener["filter_chains"][0].pop("transport_socket", None)  # plain HTTP, as the cluster
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = hcm["http_filters"][1:]
    hcm["route_config"]["virtual_hosts"][0]["routes"] = [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}
    ]
    config["static_resources"]["clusters"] = []
    return config


# ---------------------------------------------------------------- tokens


class TokenMaker:
    """An RS256 key and tokens signed with it (cryptography + PyJWT, as in the tests)."""

    def __init__(self):
        import jwt as pyjwt
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        self._jwt = pyjwt
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": "bench-key", "use": "sig"}]}

    def token(self, n: int = 0) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "azp": CLIENT, "oid": f"user-{n}",
                  "iat": now, "nbf": now, "exp": now + 3600}
        return self._jwt.encode(claims, self.key, algorithm="RS256",
                                headers={"kid": "bench-key"})


# ---------------------------------------------------------------- measuring


@dataclass
class Case:
    kind: str
    label: str
    config: Callable[[int], dict]
    check_headers: dict
    wrk_args: list[str]
    env: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)
    # For a baseline row: the row of the new module it is compared with.
    baseline_of: "Case | None" = None
    # A configuration earlier modules refuse (a newer key): no baseline rows for it.
    new_only: bool = False


def with_wasm(config: dict, wasm: Path) -> dict:
    stack.tollgate_filter(config)["vm_config"]["code"]["local"]["filename"] = str(wasm)
    return config


def with_modules(cases: list[Case], new: Path, baselines: list[Path],
                 native: bool = False) -> list[Case]:
    """The tollgate rows with module `new`, each followed by the same row with the native
    module (`native`) and with every baseline module: neighbours in every round, so all see
    the same machine."""
    out = []
    for case in cases:
        if case.kind.startswith("tollgate"):
            case.config = lambda port, make=case.config: with_wasm(make(port), new)
        out.append(case)
        if case.kind.startswith("tollgate") and native:
            out.append(Case(f"{case.kind}-native", f"{case.label} [native module]",
                            lambda port, make=case.config: stack.to_native(make(port)),
                            case.check_headers, case.wrk_args, case.env))
        if not case.kind.startswith("tollgate") or case.new_only:
            continue
        for number, wasm in enumerate(baselines):
            out.append(Case(f"{case.kind}-baseline-{number}",
                            f"{case.label} [baseline: {wasm.name}]",
                            lambda port, make=case.config, wasm=wasm: with_wasm(make(port), wasm),
                            case.check_headers, case.wrk_args, case.env, baseline_of=case))
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command]


def run_wrk(url: str, case: Case, seconds: int, connections: int) -> tuple[int, dict]:
    result = subprocess.run(
        pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                   *case.wrk_args, url]),
        capture_output=True, text=True, check=True, env={**os.environ, **case.env})
    output = result.stdout
    requests_done = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    if non_2xx:
        raise RuntimeError(f"{case.kind}: {non_2xx.group(1)} non-2xx responses:\n{output}")
    return requests_done, latency


class StartedEnvoy:
    """An Envoy pinned to one core, with --concurrency 1."""

    def __init__(self, workdir: Path, config: dict, name: str, core: int):
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = (workdir / f"{name}.log").open("wb")
        env = None
        if stack.uses_native_module(config):
            env = {**os.environ, "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(stack.MODULE_DIR)}
        self.process = subprocess.Popen(
            pinned(core, [stack.envoy_binary(), "-c", str(path), "--concurrency", "1",
                          "--base-id", str(stack.unique_base_id()), "-l", "error"]),
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.process.pid
        listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
        admin = config["admin"]["address"]["socket_address"]["port_value"]
        self.url = f"http://127.0.0.1:{listener['port_value']}"
        stack.wait_until(
            lambda: requests.get(f"http://127.0.0.1:{admin}/ready", timeout=1).ok,
            name, process=self.process)

    def stop(self):
        stack.stop(self.process)


def measure_round(envoy: StartedEnvoy, case: Case, seconds: int, connections: int):
    url = f"{envoy.url}/items/42"
    check = requests.get(url, headers=case.check_headers, timeout=5)
    if check.status_code != 200:
        raise RuntimeError(f"{case.kind}: {check.status_code} {check.text}")
    before = cpu_seconds(envoy.pid)
    started = time.monotonic()
    done, latency = run_wrk(url, case, seconds, connections)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(envoy.pid) - before
    case.samples.append((done / elapsed, cpu / done * 1e6, latency))


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def run_suite(title: str, cases: list[Case], workdir: Path, upstream_port: int, args) -> str:
    envoys = [StartedEnvoy(workdir, case.config(upstream_port), f"bench-{case.kind}", core=0)
              for case in cases]
    try:
        for envoy, case in zip(envoys, cases):  # warm-up round, not counted
            measure_round(envoy, case, 2, args.connections)
            case.samples.clear()
        pairs = list(zip(envoys, cases))
        for number in range(args.rounds):
            # Each round starts one configuration later: no configuration always runs first
            # (or last) in a round, where a drifting machine would always favour it.
            shift = number % len(pairs)
            for envoy, case in pairs[shift:] + pairs[:shift]:
                measure_round(envoy, case, args.seconds, args.connections)
    finally:
        for envoy in envoys:
            envoy.stop()

    base = cases[0].samples
    base_rps = median([s[0] for s in base])

    def extra(case: Case) -> float:
        # Extra cost is taken round by round against the passthrough of the same round, so a
        # slow round (a busy neighbour on a shared host) does not skew the difference.
        return median([s[1] - b[1] for s, b in zip(case.samples, base)])

    lines = [f"\n### {title}\n",
             "| configuration | req/s | ratio | Envoy CPU µs/req | extra µs/req | p50 | p99 |",
             "|---|---|---|---|---|---|---|"]
    for case in cases:
        rps = median([s[0] for s in case.samples])
        cpu = median([s[1] for s in case.samples])
        latency = case.samples[len(case.samples) // 2][2]
        shown = "—" if case is cases[0] else f"{extra(case):+.1f}"
        lines.append(f"| {case.label} | {rps:,.0f} | {rps / base_rps:.2f} | {cpu:.1f} | {shown} "
                     f"| {latency.get('50', '?')} | {latency.get('99', '?')} |")
    pairs = [(case.baseline_of, case) for case in cases if case.baseline_of is not None]
    if pairs:
        lines += ["", "| tollgate row | extra µs/req, new | extra µs/req, baseline | new / baseline |",
                  "|---|---|---|---|"]
        for new, old in pairs:
            ratio = extra(new) / extra(old) if extra(old) > 0 else float("nan")
            # The baseline row's label names its module.
            lines.append(f"| {old.label} | {extra(new):+.1f} | {extra(old):+.1f} | {ratio:.2f} |")
    return "\n".join(lines)


def key_suite(args) -> tuple[str, list[Case]]:
    key = secrets.token_hex(32)
    header = ["-H", f"{KEY_HEADER}: {key}"]
    plugin = key_plugin(key, args.consumers)
    return (f"Subscription key, {args.consumers} consumers", [
        Case("passthrough", "Envoy passthrough (router only)",
             lambda port: with_filters(base_config(plugin, port), []), {}, header),
        Case("native-key", "Envoy native api_key_auth (+ prefix_rewrite)",
             lambda port: with_filters(base_config(plugin, port),
                                       [native_key_filter(key, args.consumers)],
                                       prefix_rewrite="/api/v1/items"),
             {KEY_HEADER: key}, header),
        Case("tollgate-key", "tollgate: subscription key + identity header + rewrite",
             lambda port: base_config(plugin, port), {KEY_HEADER: key}, header),
    ])


def limits_suite(args) -> tuple[str, list[Case]]:
    key = secrets.token_hex(32)
    header = ["-H", f"{KEY_HEADER}: {key}"]
    plugin = key_plugin(key, args.consumers)
    plugin["products"]["starter"]["rate_limit"] = {"calls": 1_000_000_000, "renewal_period_s": 60}
    return (f"Subscription key + per-consumer rate limit (never hit), {args.consumers} consumers", [
        Case("passthrough-rl", "Envoy passthrough (router only)",
             lambda port: with_filters(base_config(plugin, port), []), {}, header),
        Case("native-rl", "Envoy native api_key_auth + local_ratelimit per consumer (+ prefix_rewrite)",
             lambda port: with_consumer_rate_limits(with_filters(
                 base_config(plugin, port),
                 [native_key_filter(key, args.consumers), native_rate_limit_filter()],
                 prefix_rewrite="/api/v1/items")),
             {KEY_HEADER: key}, header),
        Case("tollgate-rl", "tollgate: subscription key + rate limit + identity header + rewrite",
             lambda port: base_config(plugin, port), {KEY_HEADER: key}, header),
    ])


def ip_filter_suite(args) -> tuple[str, list[Case]]:
    key = secrets.token_hex(32)
    header = ["-H", f"{KEY_HEADER}: {key}"]
    plugin = key_plugin(key, args.consumers)
    prefixes = service_tag_prefixes(args.prefixes)
    filtered = {**plugin, "ip_filter": {"allow": prefixes}}
    # The same filter with 10 entries: what the list's length costs, apart from the filter's
    # own host call and lookup.
    short = {**plugin, "ip_filter": {"allow": service_tag_prefixes(10)}}
    return (f"Subscription key, {args.consumers} consumers, with and without an ip_filter of "
            f"{len(prefixes):,} prefixes admitting the caller", [
        Case("passthrough-ip", "Envoy passthrough (router only)",
             lambda port: with_filters(base_config(plugin, port), []), {}, header),
        Case("native-ip", f"Envoy native RBAC, {len(prefixes):,} remote_ip principals + "
                          "api_key_auth (+ prefix_rewrite)",
             lambda port: with_filters(base_config(plugin, port),
                                       [native_rbac_filter(prefixes),
                                        native_key_filter(key, args.consumers)],
                                       prefix_rewrite="/api/v1/items"),
             {KEY_HEADER: key}, header),
        Case("tollgate-key-no-ip", "tollgate: subscription key + identity header + rewrite, "
                                   "no ip_filter",
             lambda port: base_config(plugin, port), {KEY_HEADER: key}, header),
        Case("tollgate-key-ip10", "tollgate: the same + ip_filter of 10 prefixes",
             lambda port: base_config(short, port), {KEY_HEADER: key}, header),
        Case("tollgate-key-ip", f"tollgate: the same + ip_filter of {len(prefixes):,} prefixes",
             lambda port: base_config(filtered, port), {KEY_HEADER: key}, header),
    ])


def cache_suite(args) -> tuple[str, list[Case]]:
    key = secrets.token_hex(32)
    header = ["-H", f"{KEY_HEADER}: {key}"]
    plugin = key_plugin(key, args.consumers)
    cached = copy.deepcopy(plugin)
    # One URL, so after the first call every request is a hit: what a hit costs in Envoy
    # against a call that goes to the upstream (which here answers at once; a real backend's
    # time is saved on top).
    cached["operations"][0]["cache"] = {"ttl_s": 3600, "max_entry_bytes": 4096}
    return (f"Subscription key, {args.consumers} consumers: a cached GET (every call after the "
            "first a hit) against the same GET uncached", [
        Case("passthrough-cache", "Envoy passthrough (router only)",
             lambda port: with_filters(base_config(plugin, port), []), {}, header),
        Case("tollgate-key-uncached", "tollgate: subscription key + identity header + rewrite, "
                                      "every call upstream",
             lambda port: base_config(plugin, port), {KEY_HEADER: key}, header),
        Case("tollgate-key-cached", "tollgate: the same, answered from its response cache (hit)",
             lambda port: base_config(cached, port), {KEY_HEADER: key}, header, new_only=True),
    ])


def jwt_suite(args, workdir: Path) -> tuple[str, list[Case]]:
    maker = TokenMaker()
    token = maker.token()
    fresh = [maker.token(n) for n in range(args.fresh_tokens)]
    tokens_file = workdir / "tokens.txt"
    tokens_file.write_text("\n".join(fresh) + "\n")
    script = workdir / "tokens.lua"
    script.write_text(WRK_TOKEN_SCRIPT)
    bearer = {"Authorization": f"Bearer {token}"}
    repeated = ["-H", f"Authorization: Bearer {token}"]
    rotating = ["-s", str(script)]
    rotating_env = {"TOLLGATE_BENCH_TOKENS": str(tokens_file)}
    plugin = jwt_plugin(maker.jwks)

    def native(cache: bool):
        return lambda port: with_filters(base_config(plugin, port),
                                         [native_jwt_filter(maker.jwks, cache)])

    return (f"RS256 bearer token (2048-bit key; misses cycle through {args.fresh_tokens} "
            f"tokens, more than tollgate's 1,024-entry cache)", [
        Case("passthrough-jwt", "Envoy passthrough (router only)",
             lambda port: with_filters(base_config(plugin, port), []), {}, repeated),
        Case("native-jwt", "Envoy native jwt_authn, no token cache", native(False), bearer,
             repeated),
        Case("native-jwt-cache", "Envoy native jwt_authn + jwt_cache_config", native(True),
             bearer, repeated),
        Case("tollgate-jwt-hit", "tollgate: repeated token (cache hits)",
             lambda port: base_config(plugin, port), bearer, repeated),
        Case("tollgate-jwt-miss", "tollgate: fresh token per request (cache misses)",
             lambda port: base_config(plugin, port), bearer, rotating, rotating_env),
    ])


WRK_POST_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open(os.getenv("TOLLGATE_BENCH_BODY"), "r")
wrk.body = file:read("*a")
file:close()
"""


def flow_invoice_body(size: int) -> str:
    """A flow's invoice (PascalCase) padded with lines to `size` bytes or a little more."""
    invoice = {"InvoiceNumber": "INV-2048", "Total": "1234.50", "DueDate": "2026-12-31",
               "PurchaseOrder": "PO-77", "Lines": []}
    while len(json.dumps(invoice)) < size:
        n = len(invoice["Lines"])
        invoice["Lines"].append({"Description": f"Consulting, week {n}", "Quantity": n + 1,
                                 "UnitPrice": "120.00"})
    return json.dumps(invoice)


def body_suite(args, workdir: Path) -> tuple[str, list[Case]]:
    import demo  # tools/: the demo's transform, as `make run` configures it

    key = secrets.token_hex(32)
    body = flow_invoice_body(2048)
    body_file = workdir / "body.json"
    body_file.write_text(body)
    script = workdir / "post.lua"
    script.write_text(WRK_POST_SCRIPT)
    post = ["-H", f"{KEY_HEADER}: {key}", "-s", str(script)]
    env = {"TOLLGATE_BENCH_BODY": str(body_file)}
    plain = key_plugin(key, args.consumers)
    del plain["operations"][0]["methods"]
    transformed = copy.deepcopy(plain)
    transformed["operations"][0]["request_body"] = demo.FLOW_INVOICE_OPERATION["request_body"]
    return (f"A {len(body):,}-byte JSON POST, subscription key, {args.consumers} consumers", [
        Case("passthrough-body", "Envoy passthrough (router only)",
             lambda port: with_filters(base_config(plain, port), []), {}, post, env),
        Case("tollgate-body-plain", "tollgate: subscription key + identity header + rewrite, "
                                    "body streamed",
             lambda port: base_config(plain, port), {KEY_HEADER: key}, post, env),
        Case("tollgate-body-transform", "tollgate: the same + the demo's request transform "
                                        "(body buffered, reshaped)",
             lambda port: base_config(transformed, port), {KEY_HEADER: key}, post, env,
             new_only=True),
    ])


def global_suite(args, rls_port: int) -> tuple[str, list[Case]]:
    key = secrets.token_hex(32)
    header = ["-H", f"{KEY_HEADER}: {key}"]
    plugin = key_plugin(key, args.consumers)
    plugin["global_limits"] = {"cluster": stack.RLS_CLUSTER, "timeout_ms": 50}
    plugin["products"]["starter"]["rate_limit"] = {
        "calls": 1_000_000_000, "renewal_period_s": 60, "scope": "global"}

    def config(port: int) -> dict:
        return rls_cluster(base_config(plugin, port), rls_port)

    return (f"Subscription key + global rate limit (never hit) through tollgate-rls on Redis, "
            f"{args.consumers} consumers", [
        Case("passthrough-global", "Envoy passthrough (router only)",
             lambda port: with_filters(config(port), []), {}, header),
        Case("native-global", "Envoy native api_key_auth + ratelimit filter → tollgate-rls "
                              "(+ prefix_rewrite)",
             lambda port: with_native_global_descriptor(with_filters(
                 config(port), native_global_filters(key, args.consumers),
                 prefix_rewrite="/api/v1/items")),
             {KEY_HEADER: key}, header),
        Case("tollgate-global", "tollgate: subscription key + global rate limit → tollgate-rls "
                                "+ identity header + rewrite",
             lambda port: config(port), {KEY_HEADER: key}, header),
    ])


def seconds_to_ready(process: subprocess.Popen, admin: int, started: float) -> float:
    """Polls /ready every 10 ms (stack.wait_until's 50 ms is too coarse here)."""
    while time.monotonic() - started < 60:
        if process.poll() is not None:
            raise RuntimeError(f"Envoy exited with {process.returncode} before /ready")
        try:
            if requests.get(f"http://127.0.0.1:{admin}/ready", timeout=1).ok:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.01)
    raise RuntimeError("Envoy not ready after 60 s")


def ready_times(args, workdir: Path, upstream_port: int) -> str:
    """Seconds from starting Envoy (--concurrency 2: the module is compiled for every worker)
    to its /ready answering LIVE, with the key configuration: passthrough, and each module;
    alternating starts, medians. What a pod start waits for (Istio pulls the module to every
    pod and compiles it there)."""
    key = secrets.token_hex(32)
    plugin = key_plugin(key, args.consumers)
    rows = [("passthrough (no module)", lambda port: with_filters(base_config(plugin, port), [])),
            (f"tollgate {args.wasm.name} ({args.wasm.stat().st_size:,} B)",
             lambda port: with_wasm(base_config(plugin, port), args.wasm))]
    for wasm in args.baseline_wasm:
        rows.append((f"tollgate {wasm.name} ({wasm.stat().st_size:,} B)",
                     lambda port, wasm=wasm: with_wasm(base_config(plugin, port), wasm)))
    samples: dict[str, list[float]] = {label: [] for label, _ in rows}
    for round_number in range(args.rounds):
        for label, make in rows:
            path = workdir / f"ready-{round_number}.yaml"
            config = make(upstream_port)
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            admin = config["admin"]["address"]["socket_address"]["port_value"]
            started = time.monotonic()
            process = subprocess.Popen(
                pinned(0, [stack.envoy_binary(), "-c", str(path), "--concurrency", "2",
                           "--base-id", str(stack.unique_base_id()), "-l", "error"]),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                samples[label].append(seconds_to_ready(process, admin, started))
            finally:
                stack.stop(process)
    lines = ["", "### Start-up: Envoy to /ready (--concurrency 2)", "",
             "| configuration | median s | min s |", "|---|---|---|"]
    for label, values in samples.items():
        lines.append(f"| {label} | {median(values):.3f} | {min(values):.3f} |")
    return "\n".join(lines)


def rls_throughput(rls_port: int, args) -> str:
    """tollgate-rls alone: calls/s of a closed-loop gRPC client (core 1) against the service
    pinned to core 0."""
    load = subprocess.run(
        pinned(1, [str(stack.REPO / "target" / "release" / "examples" / "load"),
                   f"http://127.0.0.1:{rls_port}", str(args.seconds), str(args.connections)]),
        capture_output=True, text=True, check=True)
    return f"\n### tollgate-rls alone (service on core 0; client and Redis on core 1)\n\n{load.stdout.strip()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--consumers", type=int, default=1000)
    parser.add_argument("--fresh-tokens", type=int, default=3000)
    parser.add_argument("--prefixes", type=int, default=5000,
                        help="ip_filter entries in the ipfilter suite")
    parser.add_argument("--suite",
                        choices=["keys", "limits", "jwt", "body", "global", "ipfilter", "cache",
                                 "ready", "all"],
                        default="all")
    parser.add_argument("--wasm", type=Path, default=stack.WASM, metavar="PATH",
                        help="the module measured (default: the release build)")
    parser.add_argument("--baseline-wasm", type=Path, action="append", default=[],
                        metavar="PATH",
                        help="also run every tollgate row with this .wasm (an older build), "
                             "in the same rounds; may be given more than once")
    parser.add_argument("--native", action="store_true",
                        help="also run every tollgate row with the native module "
                             "(target/native/libtollgate.so), in the same rounds")
    args = parser.parse_args()
    if args.native and not stack.MODULE.is_file():
        sys.exit(f"{stack.MODULE} is missing: run `make native-module`")
    args.wasm = args.wasm.resolve()
    if not args.wasm.is_file():
        sys.exit(f"{args.wasm} is missing: run `make build`")
    args.baseline_wasm = [wasm.resolve() for wasm in args.baseline_wasm]
    for wasm in args.baseline_wasm:
        if not wasm.is_file():
            sys.exit(f"{wasm}: no such file")

    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as tmp:
        workdir = Path(tmp)
        upstream_port = stack.free_port()
        upstream = StartedEnvoy(workdir, upstream_config(upstream_port, stack.free_port()),
                                "upstream", core=1)
        suites = []
        if args.suite in ("keys", "all"):
            suites.append(key_suite(args))
        if args.suite in ("limits", "all"):
            suites.append(limits_suite(args))
        if args.suite in ("jwt", "all"):
            suites.append(jwt_suite(args, workdir))
        if args.suite in ("body", "all"):
            suites.append(body_suite(args, workdir))
        if args.suite in ("ipfilter", "all"):
            suites.append(ip_filter_suite(args))
        if args.suite in ("cache", "all"):
            suites.append(cache_suite(args))
        redis = rls = None
        if args.suite in ("global", "all"):
            # Redis and the service share core 1 with wrk and the upstream, as a sidecar's
            # neighbours would; the measured Envoy keeps core 0 to itself.
            redis = stack.Redis(workdir)
            rls = stack.RateLimitService(workdir, redis.url)
            subprocess.run(["taskset", "-p", "-c", "1", str(redis.process.pid)],
                           check=True, capture_output=True)
            subprocess.run(["taskset", "-a", "-p", "-c", "1", str(rls.process.pid)],
                           check=True, capture_output=True)
            suites.append(global_suite(args, rls.port))
        try:
            tables = [run_suite(title, with_modules(cases, args.wasm, args.baseline_wasm,
                                                    args.native),
                                workdir, upstream_port, args)
                      for title, cases in suites]
            if rls is not None:
                subprocess.run(["taskset", "-a", "-p", "-c", "0", str(rls.process.pid)],
                               check=True, capture_output=True)
                tables.append(rls_throughput(rls.port, args))
            if args.suite in ("ready", "all"):
                tables.append(ready_times(args, workdir, upstream_port))
        finally:
            upstream.stop()
            for process in (rls, redis):
                if process is not None:
                    process.stop()

    print(f"\n{args.rounds} rounds x {args.seconds} s, wrk -t1 -c{args.connections}; measured "
          f"Envoy --concurrency 1 on core 0, wrk + upstream on core 1; medians (extra: of "
          f"per-round differences against passthrough)")
    print(f"module: {args.wasm} ({args.wasm.stat().st_size:,} bytes)")
    for wasm in args.baseline_wasm:
        print(f"baseline module: {wasm} ({wasm.stat().st_size:,} bytes)")
    for table in tables:
        print(table)


if __name__ == "__main__":
    main()
