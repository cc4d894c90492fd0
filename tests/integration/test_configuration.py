"""Configurations: what ships must load, what is wrong must be refused, by Envoy and the CLI
alike, with a message that names the offending path."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml

import stack  # noqa: F401  (conftest put tools/ on the path)
from conftest import plugin_config

def write_envoy_config(tmp_path: Path, plugin: dict | str) -> Path:
    config = stack.render_envoy_config(plugin, listen_port=stack.free_port(),
                                       admin_port=stack.free_port(), backend_port=1)
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


BAD_CONFIGS = [
    ("rewrite without slash",
     lambda c: c["operations"][0].update(rewrite="api/v1/validate"),
     "operations[0].rewrite: must start with '/'"),
    ("unknown product",
     lambda c: c["consumers"][1].update(product="gold"),
     "consumers[1].product: unknown product 'gold'"),
    ("plaintext key",
     lambda c: c["consumers"][0]["keys"].append("my-secret-key"),
     "consumers[0].keys[2]: must be 'sha256:'"),
    ("unknown field",
     lambda c: c["operations"][2].update(timeout=5),
     "operations[2].timeout: unknown field `timeout`"),
    ("bad template",
     lambda c: c["operations"][0]["request_headers"]["set"].update({"x-user": "{user}"}),
     "operations[0].request_headers.set.x-user: unknown placeholder {user}"),
]


@pytest.mark.parametrize("name,edit,message", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_plugin_config_is_refused_by_envoy_and_cli_alike(tmp_path, name, edit, message):
    plugin = plugin_config()
    edit(plugin)
    result = stack.validate(write_envoy_config(tmp_path, plugin))
    assert result.returncode != 0
    envoy_output = result.stdout + result.stderr
    assert f"tollgate: invalid configuration: {message}" in envoy_output, envoy_output

    plugin_path = tmp_path / "plugin.json"
    plugin_path.write_text(json.dumps(plugin))
    cli = stack.tollgate_cli("check", str(plugin_path))
    assert cli.returncode != 0
    assert message in cli.stderr
    # The very same sentence, not just a similar one.
    cli_message = cli.stderr.strip().split(": ", 1)[1]
    assert f"tollgate: invalid configuration: {cli_message}" in envoy_output


def test_not_json_is_refused(tmp_path):
    result = stack.validate(write_envoy_config(tmp_path, "{ not json"))
    assert result.returncode != 0
    assert "tollgate: invalid configuration: configuration:" in result.stdout + result.stderr


def test_new_key_prints_a_key_and_its_hash():
    result = stack.tollgate_cli("new-key", "--consumer", "invoice-flow")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    key, digest = lines["key"].strip(), lines["hash"].strip()
    assert len(key) == 64
    assert digest == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    entry = json.loads(lines["consumer entry"])
    assert entry["id"] == "invoice-flow" and entry["keys"] == [digest]
    # Two calls never give the same key.
    again = stack.tollgate_cli("new-key").stdout
    assert key not in again


def test_hash_key_reads_stdin_only():
    result = stack.tollgate_cli("hash-key", stdin="secret-key\n")
    assert result.returncode == 0
    assert result.stdout.strip() == "sha256:" + hashlib.sha256(b"secret-key").hexdigest()
    assert stack.tollgate_cli("hash-key", "secret-key").returncode != 0
    assert stack.tollgate_cli("hash-key", stdin="").returncode != 0
