"""The ui island's Kubernetes manifests: valid for the API server (kubernetes-validate --strict), secrets in the Secret."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import yaml

from atoll.config import Config
from atoll.containers.kubernetes.island_manifests import ui_manifests
from atoll.task.stores import store_settings

DIGEST = "sha256:" + "a" * 64
TOKEN = "ui-token-" + "x" * 32
STORES = store_settings("postgresql://atoll:pw-in-the-secret@atoll-isle-db:5432/atoll", "s3",
                        {"url": "http://atoll-isle-files:9000", "bucket": "atoll"})


def _docs() -> list[dict]:
    config = Config(container_manager={"type": "kubernetes", "namespace": "atoll"})
    return ui_manifests(config, f"registry.example:5000/atoll/isle-ui@{DIGEST}", TOKEN, STORES)


def test_the_manifests_validate_strictly(tmp_path: Path) -> None:
    docs = _docs()
    assert [d["kind"] for d in docs] == ["Secret", "Deployment", "Service"]
    path = tmp_path / "ui.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    validator = Path(sys.executable).with_name("kubernetes-validate")
    done = subprocess.run([str(validator), "--strict", "-k", "1.30.0", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.count("passed") == 3, done.stdout + done.stderr


def test_the_token_and_the_store_credentials_are_only_in_the_secret() -> None:
    secret, deployment, service = _docs()
    files = {k: json.loads(base64.b64decode(v)) for k, v in secret["data"].items()}
    assert files == {"token.json": {"token": TOKEN}, "stores.json": STORES}
    rest = json.dumps([deployment, service])
    assert TOKEN not in rest and "pw-in-the-secret" not in rest
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["command"][-4:] == ["--state-file", "/run/secrets/atoll/token.json",
                                                     "--store-config", "/run/secrets/atoll/stores.json"]
