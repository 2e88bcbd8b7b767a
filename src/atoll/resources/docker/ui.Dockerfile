# The ui island (`atoll isle ui setup` on swarm): Atoll's base image plus the
# web UI's extra (`atoll[ui]`: starlette; jinja2 and nbconvert already come
# with Jupyter Lab). Built by atoll.islands.ui.SwarmUiIsland:
#
#   docker build --network host --build-arg BASE_IMAGE=atoll/base:<version> \
#       --build-arg UI_REQUIREMENTS="starlette>=0.37 ..." -f ui.Dockerfile .
ARG BASE_IMAGE=atoll/base:latest
FROM ${BASE_IMAGE}
ARG UI_REQUIREMENTS
# Unquoted on purpose: one word per requirement (a ">=" from a variable is no redirection).
USER root
RUN pip install ${UI_REQUIREMENTS} && python -c "import atoll.ui.app"
# The base image's user (uid/gid 10001): the ui runs as no root either.
USER 10001:10001
LABEL io.atoll.image=isle-ui
