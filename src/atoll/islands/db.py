"""The ``db`` island: PostgreSQL run by Atoll, the metadata store when ``metadata.native: true``.

The image is Debian's PostgreSQL on ``docker.python_image``. The ``atoll``
role logs in with a password (scram-sha-256) generated on the first setup and
kept in the treasure chest ``atoll-db`` of the home store (see
:mod:`atoll.credentials`); the container receives it as the Docker secret
``/run/secrets/atoll-db-password`` and re-applies it on every start.
"""

from __future__ import annotations

from typing import ClassVar

from atoll.backends import DB_CHEST, DB_DATABASE, DB_SERVICE_PORT, DB_USER
from atoll.config import Config, mask_url
from atoll.credentials import home_chest, new_token
from atoll.errors import UsageError
from atoll.islands.swarm import SwarmServiceIsland


class DbIsland(SwarmServiceIsland):
    """PostgreSQL as the swarm service ``<namespace>-isle-db``."""

    name: ClassVar[str] = "db"
    container_port: ClassVar[int] = DB_SERVICE_PORT
    data_path: ClassVar[str] = "/var/lib/postgresql/data"
    recipe: ClassVar[tuple[str, ...]] = ("db.Dockerfile", "db-entrypoint.sh", "island-secret.sh")
    port_setting: ClassVar[str] = "db_port"
    secret_file: ClassVar[str] = "atoll-db-password"

    def check_native(self) -> None:
        check_db_native(self.config)

    @property
    def url(self) -> str:
        return f"postgresql://{DB_USER}@{self.host}:{self.port}/{DB_DATABASE}"

    def credentials(self) -> tuple[str, str]:
        """``(user, password)``, generated and stored on first use."""
        return home_chest(self.config, DB_CHEST, DB_USER, lambda: new_token(24),
                          "password of the db island (PostgreSQL run by Atoll)")

    def secret_content(self) -> bytes:
        return self.credentials()[1].encode()

    def probe(self) -> bool:
        import psycopg

        user, password = self.credentials()
        try:
            with psycopg.connect(host=self.config.islands.host, port=self.port, user=user, password=password,
                                 dbname=DB_DATABASE, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True


def check_db_native(config: Config) -> None:
    """Refuse to set up the db island when the metadata store is configured as foreign.

    Raises:
        UsageError: ``metadata.url`` names another store and ``metadata.native`` is false.
    """
    if config.metadata.url and not config.metadata.native:
        raise UsageError(
            f"the metadata store is configured as foreign (metadata.url = {mask_url(config.metadata.url)}), "
            "so Atoll would not use a db island; to use one, unset metadata.url and set metadata.native: true"
        )


__all__ = ["DbIsland", "check_db_native"]
