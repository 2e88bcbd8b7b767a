# Atoll `db` island: PostgreSQL from Debian on top of the Python image Atoll
# builds everything from (`docker.python_image`; no registry pull needed).
#
#   docker build --network host --build-arg PYTHON_IMAGE=python:3.11-slim \
#       -f db.Dockerfile src/atoll/resources/docker
#
# Password authentication only (scram-sha-256). The password of the `atoll`
# role arrives as a Docker secret (POSTGRES_PASSWORD_FILE) and is (re)applied
# by the entrypoint on every start, so the treasure chest stays authoritative;
# it is never in the image, the environment or a command line. No root at run time.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

# Runs as the `postgres` user, uid/gid 999 (atoll.islands.swarm.ISLAND_USER), made
# before the package so Debian's scripts adopt it. Debian's package would create a
# cluster at install time; the entrypoint creates ours on the data volume instead.
RUN set -eu; \
    groupadd --system --gid 999 postgres; \
    useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --no-create-home --shell /bin/sh postgres; \
    mkdir -p /etc/postgresql-common/createcluster.d; \
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/00-atoll.conf; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; \
    rm -rf /var/lib/apt/lists/*; \
    ln -s "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)" /usr/local/lib/pgbin; \
    /usr/local/lib/pgbin/postgres --version

COPY island-secret.sh /usr/local/lib/atoll/island-secret.sh
COPY db-entrypoint.sh /usr/local/bin/atoll-db-entrypoint

ENV PATH=/usr/local/lib/pgbin:${PATH} \
    PGDATA=/var/lib/postgresql/data \
    POSTGRES_PASSWORD_FILE=/run/secrets/atoll-db-password

# A new data volume takes the ownership of the image's directory.
RUN chmod 0755 /usr/local/bin/atoll-db-entrypoint; \
    install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data; \
    install -d -o postgres -g postgres -m 2775 /run/postgresql

USER 999:999

EXPOSE 5432
VOLUME ["/var/lib/postgresql/data"]
HEALTHCHECK --interval=2s --timeout=3s --retries=5 --start-period=60s \
    CMD ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432", "-U", "atoll", "-d", "atoll"]
LABEL io.atoll.image=isle-db
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/atoll-db-entrypoint"]
