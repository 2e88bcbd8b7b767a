# Atoll base image: Python + Atoll's on-board side (toolkit, notebook runner,
# metadata/file-store clients) + papermill, ipykernel and Jupyter Lab.
#
# Build context (prepared by Atoll's build code, atoll.containers.swarm.images):
#   deps/requirements.txt   Atoll's own dependencies (extras resolved); installed in
#                           their own layer, so a change of Atoll's code alone
#                           reuses that (slow) layer from the build cache
#   dist/   exactly one atoll wheel (*.whl) or, failing that, an sdist (*.tar.gz);
#           Atoll's wheel (build_wheel) also carries the package `noronha` (atoll.compat.noronha)
#
#   docker build --network host --build-arg PYTHON_IMAGE=python:3.11-slim \
#       -f base.Dockerfile CONTEXT
#
# Written for the classic builder (no BuildKit-only syntax), so it also builds
# where BuildKit is unavailable.  Works on the official python:*-slim images and
# on the Debian image made by scripts/offline-python-image: Atoll lives in its
# own virtual environment, so neither the image's Python layout nor Debian's
# "externally managed" marker matters.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

# Extras the on-board side needs (S3 and MongoDB stores) plus the IDE.
ARG ATOLL_EXTRAS=s3,mongo,ide

ENV VIRTUAL_ENV=/opt/atoll/venv \
    PATH=/opt/atoll/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python3 -m venv /opt/atoll/venv

COPY deps/ /tmp/atoll-deps/
RUN pip install -r /tmp/atoll-deps/requirements.txt && rm -rf /tmp/atoll-deps

# The kernel the runner executes notebooks with (atoll.runner.KERNEL_NAME), as
# every local build environment declares it too.
RUN set -eu; \
    kernel=/opt/atoll/venv/share/jupyter/kernels/atoll; \
    mkdir -p "$kernel"; \
    printf '%s\n' '{"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],' \
        ' "display_name": "Python (Atoll build)", "language": "python", "metadata": {"debugger": true}}' \
        > "$kernel/kernel.json"; \
    python -c "from jupyter_client.kernelspec import KernelSpecManager as M; M().get_kernel_spec('atoll')"

COPY dist/ /tmp/atoll-dist/

# Prefer the wheel; an sdist is built by pip. Its dependencies (extras
# included) are already installed from deps/ above, hence --no-deps: this
# layer, rebuilt whenever Atoll's code changes, takes seconds.
RUN set -eu; \
    pkg="$(ls /tmp/atoll-dist/*.whl 2>/dev/null | head -n 1 || true)"; \
    if [ -z "$pkg" ]; then pkg="$(ls /tmp/atoll-dist/*.tar.gz 2>/dev/null | head -n 1 || true)"; fi; \
    if [ -z "$pkg" ]; then echo "base.Dockerfile: no atoll wheel or sdist in dist/" >&2; exit 1; fi; \
    if [ -n "$ATOLL_EXTRAS" ]; then pkg="${pkg}[${ATOLL_EXTRAS}]"; fi; \
    pip install --no-deps "$pkg"; \
    rm -rf /tmp/atoll-dist; \
    python -c "import atoll, papermill, ipykernel"

# Tasks run as `atoll`, uid/gid 10001 (atoll.containers.spec.TASK_USER), never as root.
# Where a task writes outside its mounts (/atoll: the executed notebook and
# /atoll/tmp; /data and /model with fetch staging) is open to every uid, sticky
# like /tmp: on swarm a task runs as the uid of the user Atoll runs as.
# A project's own Dockerfile runs its RUN steps as `atoll` too: `USER root`
# for what needs root (apt-get, pip into /opt/atoll/venv), then `USER atoll`.
RUN set -eu; \
    groupadd --gid 10001 atoll; \
    useradd --uid 10001 --gid 10001 --home-dir /home/atoll --create-home --shell /bin/sh atoll; \
    install -d -m 1777 /atoll /atoll/tmp /data /model

# What a Dockerfile written for Noronha's base image uses (README, Coming from
# Noronha): `source ${CONDA_HOME}/bin/activate ${CONDA_VENV}` enters Atoll's
# environment (the venv's own activate script; the name is not needed), and the
# project goes to ${APP_HOME}. Here, after the slow layers, so their cache holds.
ENV CONDA_HOME=/opt/atoll/venv \
    CONDA_VENV=py3_default \
    APP_HOME=/app

LABEL io.atoll.image=base

WORKDIR /app
USER 10001:10001
