"""`make run`'s demo: it starts, prints keys, the curl it prints is served over HTTPS with the
demo's own certificate, and the global quota it shows holds across its two gateways."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import requests
import yaml

import stack


def test_demo_serves_the_curl_it_prints(tmp_path):
    env = dict(os.environ,
               TOLLGATE_DEMO_DIR=str(tmp_path),
               TOLLGATE_DEMO_PORT=str(stack.free_port()),
               TOLLGATE_DEMO_ADMIN_PORT=str(stack.free_port()),
               TOLLGATE_DEMO_BACKEND_PORT=str(stack.free_port()),
               TOLLGATE_DEMO_PORT_B=str(stack.free_port()),
               TOLLGATE_DEMO_ADMIN_PORT_B=str(stack.free_port()),
               TOLLGATE_DEMO_RLS_PORT=str(stack.free_port()),
               TOLLGATE_DEMO_REDIS_PORT=str(stack.free_port()))
    demo = [sys.executable, str(stack.REPO / "tools" / "demo.py")]
    started = subprocess.run([*demo, "start"], env=env, capture_output=True, text=True,
                             timeout=120, cwd=stack.REPO)
    try:
        assert started.returncode == 0, started.stderr
        output = started.stdout
        keys = re.findall(r"\b[0-9a-f]{64}\b", output)
        assert len(set(keys)) == 4, output
        # Only hashes reach the generated config; the plaintext keys do not.
        written = (tmp_path / "envoy.yaml").read_text()
        assert not any(key in written for key in keys)

        # The first curl it prints, as printed: HTTPS, trusting the certificate made for this
        # run (curl's own CA bundle is not used, so nothing else could have signed it).
        cacert = tmp_path / "tls" / "tls.crt"
        first_curl = output[output.index(f"curl --cacert {cacert} -i -X POST https://"):]
        first_curl = first_curl.split("\n  curl")[0]
        command = shlex.split(first_curl.replace("\\\n", " "))
        served = subprocess.run([*command[:1], "-s", "-o", "-", "-w", "\n%{http_code}",
                                 *command[1:]], capture_output=True, text=True, timeout=30,
                                cwd=stack.REPO)
        body, _, status = served.stdout.rpartition("\n")
        assert status == "200", served.stdout + served.stderr
        assert '"valid":true' in body
        assert '"x-consumer-id","invoice-flow"' in body

        # The printed CORS preflight: answered by tollgate without a key, for the maker portal.
        preflight = output[output.index(f"curl --cacert {cacert} -i -X OPTIONS"):]
        preflight = preflight.split("# 200, a browser's CORS preflight")[0]
        command = shlex.split(preflight.replace("\\\n", " "))
        answered = subprocess.run([*command, "-s"], capture_output=True, text=True, timeout=30,
                                  cwd=stack.REPO).stdout.lower()
        assert answered.startswith("http/1.1 200"), answered
        assert "access-control-allow-origin: https://make.powerautomate.com" in answered
        assert "ocp-apim-subscription-key" in answered.split("access-control-allow-headers:")[1]

        # The printed cache curls: the first GET of an invoice goes to the backend, the same
        # GET again is answered from the gateway's cache.
        cache_curls = [line.split("#")[0] for line in output.splitlines()
                       if "/invoices/INV-2" in line]
        assert len(cache_curls) == 2, output
        seen = [subprocess.run(curl, shell=True, capture_output=True, text=True, timeout=30,
                               cwd=stack.REPO).stdout.lower() for curl in cache_curls]
        assert "x-cache: miss" in seen[0], seen
        assert "x-cache: hit" in seen[1] and "age: " in seen[1], seen

        # Both gateways: HTTPS only, with the reference's edge settings (the caller's address
        # from the connection, the shipped routes and retries).
        reference = stack.load_reference()
        for name, port in (("envoy", env["TOLLGATE_DEMO_PORT"]),
                           ("envoy-b", env["TOLLGATE_DEMO_PORT_B"])):
            generated = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
            listener = generated["static_resources"]["listeners"][0]
            hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
            assert hcm["use_remote_address"] is True and hcm["xff_num_trusted_hops"] == 0
            assert hcm["route_config"] == reference["static_resources"]["listeners"][0][
                "filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
            (served_pair,) = stack.downstream_tls(listener)["common_tls_context"][
                "tls_certificates"]
            assert served_pair["certificate_chain"]["filename"] == str(cacert)
            assert requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(cacert),
                                timeout=10).status_code == 200
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        # The private key is the demo user's alone.
        assert (tmp_path / "tls" / "tls.key").stat().st_mode & 0o077 == 0
        # The flow's invoice: reshaped into the backend's model, which FastAPI accepts.
        flow_curl = output[output.index(f"curl --cacert {cacert} -s -X POST",
                                        output.index("a Power Automate")):]
        command = shlex.split(" ".join(flow_curl.split("\n")[:2]).replace("\\", " "))
        served = subprocess.run([*command[:1], "-w", "\n%{http_code}", *command[1:]],
                                capture_output=True, text=True, timeout=30, cwd=stack.REPO)
        body, _, status = served.stdout.rpartition("\n")
        assert status == "201", served.stdout
        created = json.loads(body)
        assert (created["invoice_id"], created["currency"]) == ("INV-7", "EUR")

        # The printed loop over both gateways: ten admitted, then the shared quota is out.
        loop = output[output.index("  for url in"):output.index("# 200 ten times")]
        statuses = subprocess.run(["bash", "-c", loop], capture_output=True, text=True,
                                  timeout=60, cwd=stack.REPO).stdout.split()
        assert statuses == ["200"] * 10 + ["403"] * 2, statuses
    finally:
        subprocess.run([*demo, "stop"], env=env, capture_output=True, timeout=60)
