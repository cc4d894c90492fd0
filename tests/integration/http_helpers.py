"""Small helpers for reading what the backend saw and for sending bytes no HTTP library would."""

from __future__ import annotations

import re
import socket

import requests


def seen(response: requests.Response) -> dict:
    """What the echo backend received, as it reported it."""
    assert response.status_code == 200, response.text
    return response.json()["received"]


def assert_exact_burst(responses: list[requests.Response], admitted: int, window_s: int):
    """A burst against a rate limit: exactly `admitted` 200s, every other answer APIM's 429
    with a `Retry-After` between 1 and the window."""
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == admitted, statuses
    assert statuses.count(429) == len(responses) - admitted, statuses
    for response in responses:
        if response.status_code == 429:
            retry_after = int(response.headers["retry-after"])
            assert 1 <= retry_after <= window_s
            assert response.json() == {
                "statusCode": 429,
                "message": f"Rate limit is exceeded. Try again in {retry_after} seconds."}


def header_values(received: dict, name: str) -> list[str]:
    return [value for header, value in received["headers"] if header == name.lower()]


def upstream_requests(envoy) -> int:
    """Requests Envoy sent to the backend cluster so far."""
    stats = requests.get(f"{envoy.admin}/stats?filter=^cluster\\.backend\\.upstream_rq_total$",
                         timeout=5).text
    for line in stats.splitlines():
        name, _, value = line.partition(": ")
        if name == "cluster.backend.upstream_rq_total":
            return int(value)
    return 0


def raw_request(port: int, head: bytes, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """Sends `head` (request line and headers, already terminated) as-is; returns the status
    and the raw response. Used for bytes that HTTP client libraries refuse to send."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        header_end = data.find(b"\r\n\r\n")
        head_text = data[:header_end].decode("latin-1") if header_end >= 0 else ""
        length = 0
        for line in head_text.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(data) < header_end + 4 + length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, data


# The tag each label of a tollgate series name becomes on /stats/prometheus (the shipped
# configs' `stats_tags`; the native module names its labels so).
PROMETHEUS_LABELS = {"op": "operation"}


def tollgate_metric(envoy, series: str) -> float | None:
    """The value of one of tollgate's series, named as the filter names it
    (`tollgate_masked_errors_total.op=crash`), read from /stats/prometheus, where both hosts
    show the same names and labels (`tollgate_masked_errors_total{operation="crash"}`; the
    plain /stats names differ: `wasmcustom.<series>` on the wasm host,
    `dynamicmodulescustom.<name>.<label>.<value>...` on the native one). `None` if there is
    no such series."""
    name, *pairs = series.split(".")
    wanted = {PROMETHEUS_LABELS.get(key, key): value
              for key, _, value in (pair.partition("=") for pair in pairs)}
    text = requests.get(f"{envoy.admin}/stats/prometheus", timeout=5).text
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, labels = head.partition("{")
        if metric != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        if found == wanted:
            return float(value)
    return None
