#!/bin/sh
# Entrypoint of the Atoll `files` island (see files.Dockerfile): serve the
# data volume over S3 with SigV4 authentication by the secret key pair.
set -eu
. /usr/local/lib/atoll/island-secret.sh

KEYS="$(read_secret atoll-files key "${ATOLL_FILES_KEYS_FILE:-/run/secrets/atoll-files-keys}")"
case "$KEYS" in
    *[!A-Za-z0-9_,-]*|*,*,*|,*|*,|"") fail atoll-files "the key secret must be 'access_key,secret_key' (A-Z a-z 0-9 _ -)" ;;
    *,*) ;;
    *) fail atoll-files "the key secret must be 'access_key,secret_key'" ;;
esac
# rclone reads any flag from RCLONE_<FLAG>, so the keys stay off the command
# line; list flags are CSV there, hence the quotes around the pair.
RCLONE_AUTH_KEY="\"$KEYS\""
export RCLONE_AUTH_KEY
unset KEYS
mkdir -p "${ATOLL_FILES_DATA:-/data}"

exec rclone serve s3 "${ATOLL_FILES_DATA:-/data}" --addr 0.0.0.0:9000 --force-path-style --log-level NOTICE "$@"
