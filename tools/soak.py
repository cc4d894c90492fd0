"""Soak: a million or more mixed requests through a real Envoy with tollgate, watching Envoy's
memory. Not part of `make test` (it takes minutes); run by hand:

    .venv/bin/python tools/soak.py [--requests 1000000] [--segment-s 15] [--sample-s 2]

Why: caches and counters must stay bounded under a long, varied load (the verified-token cache
and its failure cache, shared-data counters, metric series, per-request allocations in the
wasm VM). A leak shows as Envoy's resident memory climbing after warm-up.

Layout: Envoy with `--concurrency 2` (two worker VMs) and the tollgate filter from
target/wasm32-wasip1/release/tollgate.wasm (`make build`; not rebuilt here), in front of a
second Envoy that answers every request with a direct response (the fast upstream of
tools/bench.py). wrk drives the load with a Lua script that cycles through a fixed mix:

    valid subscription key (one of many consumers)      40 %
    invalid key (a different one each time)             10 %
    no credential                                       10 %
    JWT cache hit (a few RS256 tokens, repeated)        25 %
    JWT miss (a fresh RS256 token, each used once)       0.5 %
    broken bearer token (a different one each time)      4.5 %
    limited consumer (100 calls/s; the rest get 429)    10 %

The load runs in segments of `--segment-s` seconds until `--requests` are done; Envoy's VmRSS
(/proc/<pid>/status) and the heap its admin reports (/memory) are sampled every `--sample-s`
seconds. The first `--warmup` share of the requests is warm-up; the report gives the curve,
the growth of RSS from the end of warm-up to the end (and its peak), and says whether it
stayed flat (growth under `--flat-pct`). Exit status 1 when it did not, or when any response
was a 5xx.
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

import bench
import stack

KEY_HEADER = bench.KEY_HEADER

# The request mix, per 200 requests (see the module docstring).
MIX = {"key": 80, "bad_key": 20, "missing": 20, "hit": 50, "miss": 1, "bad_jwt": 9,
       "limited": 20}
LIMITED_CALLS_PER_S = 100

WRK_SCRIPT = r"""
-- tollgate soak: a fixed mix of requests, cycled; status codes counted per thread.
local dir = os.getenv("TOLLGATE_SOAK_DIR")
local function lines(name)
  local t = {}
  for line in io.lines(dir .. "/" .. name) do t[#t + 1] = line end
  return t
end
local keys = lines("keys.txt")
local hits = lines("hit_tokens.txt")
local fresh = lines("fresh_tokens.txt")
local mix = lines("mix.txt")
local limited_key = lines("limited_key.txt")[1]
local key_header = "__KEY_HEADER__"
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  n = 0
  counts = {}
  local start = tonumber(os.getenv("TOLLGATE_SOAK_FRESH_START"))
  step = tonumber(os.getenv("TOLLGATE_SOAK_THREADS"))
  fresh_i = start + id
end

function request()
  n = n + 1
  local kind = mix[n % #mix + 1]
  local tag = id .. "-" .. n
  if kind == "key" then
    return wrk.format("GET", "/items/" .. n, { [key_header] = keys[n % #keys + 1] })
  elseif kind == "bad_key" then
    return wrk.format("GET", "/items/" .. n, { [key_header] = "not-a-key-" .. tag })
  elseif kind == "missing" then
    return wrk.format("GET", "/items/" .. n)
  elseif kind == "hit" then
    return wrk.format("GET", "/items/" .. n,
      { ["Authorization"] = "Bearer " .. hits[n % #hits + 1] })
  elseif kind == "miss" then
    local token = fresh[fresh_i % #fresh + 1]
    fresh_i = fresh_i + step
    return wrk.format("GET", "/items/" .. n, { ["Authorization"] = "Bearer " .. token })
  elseif kind == "bad_jwt" then
    return wrk.format("GET", "/items/" .. n,
      { ["Authorization"] = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0." .. tag })
  else
    return wrk.format("GET", "/limited/" .. n, { [key_header] = limited_key })
  end
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for status, count in pairs(c) do total[status] = (total[status] or 0) + count end
  end
  for status, count in pairs(total) do print("STATUS " .. status .. " " .. count) end
end
"""


def plugin(consumer_keys: list[str], limited_key: str, jwks: dict) -> dict:
    return {
        "products": {
            "open": {},
            "limited": {"rate_limit": {"calls": LIMITED_CALLS_PER_S, "renewal_period_s": 1}},
        },
        "consumers": [
            *({"id": f"consumer-{n}", "product": "open", "keys": [bench.sha256_ref(key)]}
              for n, key in enumerate(consumer_keys)),
            {"id": "limited", "product": "limited", "keys": [bench.sha256_ref(limited_key)]},
            {"id": "soak-jwt", "product": "open", "jwt_client_ids": [bench.CLIENT]},
        ],
        "jwt": {"issuers": [bench.ISSUER], "audiences": [bench.AUDIENCE],
                "algorithms": ["RS256"], "jwks": jwks,
                "claims_to_headers": {"oid": "x-user-oid"}},
        "operations": [
            {"name": "items", "methods": ["GET"], "path_prefix": "/items", "auth": "either",
             "request_headers": {"set": {"x-consumer-id": "{consumer}"}}},
            {"name": "limited", "methods": ["GET"], "path_prefix": "/limited"},
        ],
    }


class SoakEnvoy:
    """The Envoy under test: two workers, not pinned, logging warnings only (at info the
    filter writes a line per denial, a third of the load)."""

    def __init__(self, workdir: Path, config: dict):
        path = workdir / "soak.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / "soak.log"
        self.process = subprocess.Popen(
            [stack.envoy_binary(), "-c", str(path), "--concurrency", "2",
             "--base-id", str(stack.unique_base_id()), "-l", "warn"],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)
        listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
        admin_port = config["admin"]["address"]["socket_address"]["port_value"]
        self.url = f"http://127.0.0.1:{listener['port_value']}"
        self.admin = f"http://127.0.0.1:{admin_port}"
        stack.wait_until(
            lambda: requests.get(f"{self.admin}/ready", timeout=1).text.strip() == "LIVE",
            f"envoy ({self.log_path})", process=self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self):
        stack.stop(self.process)


def memory(pid: int, admin: str) -> tuple[int, int | None]:
    """Envoy's resident memory (kB, VmRSS) and the heap its allocator holds (bytes)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
    try:
        allocated = int(requests.get(f"{admin}/memory", timeout=2).json()["allocated"])
    except (requests.RequestException, KeyError, ValueError):
        allocated = None
    return rss_kb, allocated


class Sampler(threading.Thread):
    """Samples Envoy's memory every `every_s` seconds; `requests_done` is set by the driver."""

    def __init__(self, pid: int, admin: str, every_s: float):
        super().__init__(daemon=True)
        self.pid, self.admin, self.every_s = pid, admin, every_s
        self.samples: list[tuple[float, int, int, int | None]] = []
        self.requests_done = 0
        self.stopping = threading.Event()
        self.started_at = time.monotonic()

    def sample(self):
        rss_kb, allocated = memory(self.pid, self.admin)
        self.samples.append((time.monotonic() - self.started_at, self.requests_done, rss_kb,
                             allocated))

    def run(self):
        while not self.stopping.wait(self.every_s):
            self.sample()


def run_segment(url: str, seconds: int, connections: int, env: dict) -> tuple[int, dict]:
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", env["TOLLGATE_SOAK_SCRIPT"],
         url],
        capture_output=True, text=True, check=True, env=env, timeout=seconds + 60)
    done = int(re.search(r"(\d+) requests in", result.stdout).group(1))
    statuses = {int(s): int(c) for s, c in re.findall(r"^STATUS (\d+) (\d+)$", result.stdout,
                                                       re.M)}
    return done, statuses


def sparkline(values: list[float]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    low, high = min(values), max(values)
    span = (high - low) or 1
    return "".join(bars[min(7, int((v - low) / span * 8))] for v in values)


def report(sampler: Sampler, warmup_requests: int, flat_pct: float,
           statuses: dict[int, int], total: int, elapsed: float) -> bool:
    samples = sampler.samples
    print(f"\n{total:,} requests in {elapsed:.0f} s ({total / elapsed:,.0f} req/s); statuses: "
          + ", ".join(f"{s}: {c:,}" for s, c in sorted(statuses.items())))
    print("\nEnvoy memory (VmRSS; heap = admin /memory 'allocated'):")
    print(f"{'t (s)':>7} {'requests':>11} {'RSS (MB)':>9} {'heap (MB)':>10}")
    step = max(1, len(samples) // 40)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    for t, done, rss, heap in shown:
        heap_text = f"{heap / 2**20:10.1f}" if heap is not None else f"{'?':>10}"
        print(f"{t:7.0f} {done:11,} {rss / 1024:9.1f} {heap_text}")
    rss = [s[2] / 1024 for s in samples]
    print(f"RSS curve ({min(rss):.1f} to {max(rss):.1f} MB): {sparkline(rss)}")

    after = [s for s in samples if s[1] >= warmup_requests]
    warm = [s for s in samples if s[1] < warmup_requests]
    if not warm or len(after) < 2:
        print("too few samples after warm-up to judge")
        return False
    baseline = warm[-1][2]
    final = after[-1][2]
    peak = max(s[2] for s in after)
    growth = (final - baseline) / baseline * 100
    peak_growth = (peak - baseline) / baseline * 100
    # Least-squares slope of RSS against requests after warm-up, per million requests.
    xs = [s[1] for s in after]
    ys = [s[2] for s in after]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs) or 1
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var * 1e6
    heaps = [s[3] for s in after if s[3] is not None]
    heap_note = ""
    if heaps and warm[-1][3]:
        heap_note = (f"; heap {warm[-1][3] / 2**20:.1f} → {heaps[-1] / 2**20:.1f} MB "
                     f"({(heaps[-1] - warm[-1][3]) / warm[-1][3] * 100:+.1f} %)")
    flat = abs(growth) < flat_pct and peak_growth < flat_pct
    print(f"\nwarm-up: first {warmup_requests:,} requests; RSS at its end {baseline / 1024:.1f} MB, "
          f"at the end {final / 1024:.1f} MB ({growth:+.1f} %), peak after warm-up "
          f"{peak / 1024:.1f} MB ({peak_growth:+.1f} %), trend {slope / 1024:+.2f} MB per "
          f"million requests{heap_note}")
    print(f"verdict: {'FLAT' if flat else 'GROWING'} after warm-up (threshold {flat_pct} %)")
    return flat


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--segment-s", type=int, default=15)
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--consumers", type=int, default=1000)
    parser.add_argument("--hit-tokens", type=int, default=20)
    parser.add_argument("--fresh-tokens", type=int, default=8000,
                        help="pool of one-use RS256 tokens (0.5 %% of requests use one)")
    parser.add_argument("--warmup", type=float, default=0.15,
                        help="share of the requests counted as warm-up")
    parser.add_argument("--flat-pct", type=float, default=5.0)
    args = parser.parse_args()
    if not stack.WASM.exists():
        sys.exit(f"{stack.WASM} is missing: run `make build`")

    with tempfile.TemporaryDirectory(prefix="tollgate-soak-") as tmp:
        workdir = Path(tmp)
        print(f"making {args.fresh_tokens + args.hit_tokens} RS256 tokens ...", flush=True)
        maker = bench.TokenMaker()
        consumer_keys = [secrets.token_hex(16) for _ in range(args.consumers)]
        limited_key = secrets.token_hex(16)
        (workdir / "keys.txt").write_text("\n".join(consumer_keys) + "\n")
        (workdir / "limited_key.txt").write_text(limited_key + "\n")
        (workdir / "hit_tokens.txt").write_text(
            "\n".join(maker.token(n) for n in range(args.hit_tokens)) + "\n")
        (workdir / "fresh_tokens.txt").write_text(
            "\n".join(maker.token(10_000 + n) for n in range(args.fresh_tokens)) + "\n")
        # Spread each kind evenly through the cycle.
        cycle = sorted(((i + 0.5) / count, kind) for kind, count in MIX.items()
                       for i in range(count))
        (workdir / "mix.txt").write_text("\n".join(kind for _, kind in cycle) + "\n")
        script = workdir / "soak.lua"
        script.write_text(WRK_SCRIPT.replace("__KEY_HEADER__", KEY_HEADER))

        upstream_port = stack.free_port()
        upstream = bench.StartedEnvoy(
            workdir, bench.upstream_config(upstream_port, stack.free_port()), "upstream", core=1)
        config = stack.render_envoy_config(
            plugin(consumer_keys, limited_key, maker.jwks), listen_port=stack.free_port(),
            admin_port=stack.free_port(), backend_port=upstream_port)
        envoy = SoakEnvoy(workdir, config)
        try:
            # The wasm VMs and every kind of answer, once, before measuring.
            url = f"{envoy.url}/items/1"
            assert requests.get(url, headers={KEY_HEADER: consumer_keys[0]}).status_code == 200
            assert requests.get(url).status_code == 401
            sampler = Sampler(envoy.process.pid, envoy.admin, args.sample_s)
            sampler.sample()
            sampler.start()
            env = {"TOLLGATE_SOAK_DIR": str(workdir), "TOLLGATE_SOAK_SCRIPT": str(script),
                   "TOLLGATE_SOAK_THREADS": "2", "PATH": "/usr/bin:/bin"}
            total, statuses, started = 0, {}, time.monotonic()
            while total < args.requests:
                env["TOLLGATE_SOAK_FRESH_START"] = str(total * MIX["miss"] // 200)
                done, counted = run_segment(url, args.segment_s, args.connections, env)
                total += done
                sampler.requests_done = total
                for status, count in counted.items():
                    statuses[status] = statuses.get(status, 0) + count
                print(f"  {total:>11,} requests, RSS "
                      f"{sampler.samples[-1][2] / 1024:.1f} MB; this segment: "
                      + ", ".join(f"{s}: {c:,}" for s, c in sorted(counted.items())),
                      flush=True)
            elapsed = time.monotonic() - started
            sampler.stopping.set()
            sampler.join()
            sampler.sample()
            log_errors = [line for line in envoy.log().splitlines()
                          if "critical" in line or "panicked" in line]
        finally:
            envoy.stop()
            upstream.stop()

    flat = report(sampler, int(args.requests * args.warmup), args.flat_pct, statuses, total,
                  elapsed)
    server_errors = sum(c for s, c in statuses.items() if s >= 500)
    for needed in (200, 401, 429):
        if not statuses.get(needed):
            print(f"no {needed} answer: the mix did not do what it should")
            flat = False
    if server_errors or log_errors:
        print(f"{server_errors} responses were 5xx; Envoy log: {log_errors[:5]}")
    sys.exit(0 if flat and not server_errors and not log_errors else 1)


if __name__ == "__main__":
    main()
