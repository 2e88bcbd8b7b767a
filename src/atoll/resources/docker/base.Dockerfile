# Atoll base image: Python + Atoll's on-board side (toolkit, notebook runner,
# metadata/file-store clients) + papermill, ipykernel and Jupyter Lab.
#
# Build context (prepared by Atoll's build code):
#   dist/   exactly one atoll wheel (*.whl) or, failing that, an sdist (*.tar.gz)
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

COPY dist/ /tmp/atoll-dist/

# Prefer the wheel; an sdist is built by pip. Extras are appended to the file
# name (pip accepts `file.whl[extra,...]`).
RUN set -eu; \
    pkg="$(ls /tmp/atoll-dist/*.whl 2>/dev/null | head -n 1 || true)"; \
    if [ -z "$pkg" ]; then pkg="$(ls /tmp/atoll-dist/*.tar.gz 2>/dev/null | head -n 1 || true)"; fi; \
    if [ -z "$pkg" ]; then echo "base.Dockerfile: no atoll wheel or sdist in dist/" >&2; exit 1; fi; \
    if [ -n "$ATOLL_EXTRAS" ]; then pkg="${pkg}[${ATOLL_EXTRAS}]"; fi; \
    pip install "$pkg"; \
    rm -rf /tmp/atoll-dist; \
    python -c "import atoll, papermill, ipykernel"

LABEL io.atoll.image=base

WORKDIR /app
