# Atoll `registry` island: Debian's Docker registry (distribution) over a data
# volume, built on `docker.python_image` (no registry pull needed).
#
#   docker build --network host --build-arg PYTHON_IMAGE=python:3.11-slim \
#       -f registry.Dockerfile src/atoll/resources/docker
#
# Published on the host's loopback only (127.0.0.1 registries need no
# "insecure registry" setting in dockerd).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

# Runs as `docker-registry`, uid/gid 999 (atoll.islands.swarm.ISLAND_USER), made
# before the package so Debian's scripts adopt it; a new data volume takes the
# ownership of the image's directory.
RUN set -eu; \
    groupadd --system --gid 999 docker-registry; \
    useradd --system --uid 999 --gid 999 --home-dir /var/lib/docker-registry --no-create-home \
        --shell /usr/sbin/nologin docker-registry; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry; \
    rm -rf /var/lib/apt/lists/*; \
    install -d -o docker-registry -g docker-registry -m 0750 /var/lib/docker-registry; \
    /usr/bin/docker-registry --version

COPY registry.yml /etc/atoll/registry.yml

EXPOSE 5000
VOLUME ["/var/lib/docker-registry"]
HEALTHCHECK --interval=2s --timeout=3s --retries=5 --start-period=30s \
    CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:5000/v2/', timeout=2)"]
LABEL io.atoll.image=isle-registry
USER 999:999
ENTRYPOINT ["/usr/bin/docker-registry", "serve", "/etc/atoll/registry.yml"]
