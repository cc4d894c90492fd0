"""Malformed input of any size gets a 4xx, never a 5xx, and the VM stays alive afterwards."""

import requests

from conftest import Keys
from http_helpers import raw_request, seen

KEY_HEADER = "Ocp-Apim-Subscription-Key"


def raw_validate(gateway, header_lines: list[bytes], target: bytes = b"/validate") -> int:
    head = (b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
            + b"".join(line + b"\r\n" for line in header_lines) + b"Connection: close\r\n\r\n")
    status, _ = raw_request(gateway.port, head)
    return status


def test_empty_key_counts_as_missing(gateway):
    response = requests.post(f"{gateway.url}/validate", headers={KEY_HEADER: ""}, timeout=10)
    assert response.status_code == 401
    assert "missing subscription key" in response.json()["message"]


def test_16_kib_key_is_401(gateway):
    response = requests.post(f"{gateway.url}/validate", headers={KEY_HEADER: "k" * 16384},
                             timeout=10)
    assert response.status_code == 401
    assert "invalid subscription key" in response.json()["message"]
    assert "kkkk" not in response.text


def test_huge_key_in_query_is_4xx(gateway):
    response = requests.post(f"{gateway.url}/validate?subscription-key={'q' * 16384}",
                             timeout=10)
    assert response.status_code == 401


def test_non_ascii_key_bytes_are_401(gateway):
    # Raw latin-1 and UTF-8 bytes in the header value: not UTF-8 text for the SDK's text API.
    for value in [b"\xff\xfe\xfd", "ключ-🔑".encode(), b"abc\xc3"]:
        status = raw_validate(gateway, [KEY_HEADER.encode() + b": " + value])
        assert status == 401, value


def test_control_characters_are_4xx(gateway):
    for value in [b"abc\x01def", b"abc\x7f", b"a\tb"]:
        status = raw_validate(gateway, [KEY_HEADER.encode() + b": " + value])
        assert 400 <= status < 500, (value, status)


def test_repeated_key_header(gateway):
    key = Keys.primary.encode()
    assert raw_validate(gateway, [KEY_HEADER.encode() + b": " + key,
                                  KEY_HEADER.encode() + b": " + key]) == 200
    assert raw_validate(gateway, [KEY_HEADER.encode() + b": " + key,
                                  KEY_HEADER.encode() + b": " + Keys.portal.encode()]) == 401
    assert raw_validate(gateway, [KEY_HEADER.encode() + b": " + key,
                                  KEY_HEADER.encode() + b": nope"]) == 401


def test_query_parameter_twice(gateway):
    same = f"?subscription-key={Keys.primary}&subscription-key={Keys.primary}"
    response = requests.post(f"{gateway.url}/validate{same}", timeout=10)
    assert seen(response)["query"] == ""
    differ = f"?subscription-key={Keys.primary}&subscription-key={Keys.portal}"
    response = requests.post(f"{gateway.url}/validate{differ}", timeout=10)
    assert response.status_code == 401


def test_percent_encoded_query_parameter_is_found_and_stripped(gateway):
    encoded_value = "".join(f"%{ord(c):02X}" for c in Keys.portal)
    for query in (f"subscription%2Dkey={Keys.portal}&keep=1",
                  f"subscription-key={encoded_value}&keep=1"):
        response = requests.post(f"{gateway.url}/validate?{query}", timeout=10)
        received = seen(response)
        assert received["query"] == "keep=1"
        assert "subscription" not in received["query"]


def test_broken_percent_escapes_are_401(gateway):
    response = requests.post(f"{gateway.url}/validate?subscription-key=%zz%", timeout=10)
    assert response.status_code == 401


def test_vm_still_serves_after_all_of_the_above(gateway):
    response = requests.post(f"{gateway.url}/validate", headers={KEY_HEADER: Keys.primary},
                             json={}, timeout=10)
    assert response.status_code == 200
    assert "panicked" not in gateway.log()
