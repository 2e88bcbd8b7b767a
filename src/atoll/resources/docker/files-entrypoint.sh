#!/bin/sh
# Entrypoint of the Atoll `files` island (see files.Dockerfile): serve the
# data volume over S3 with SigV4 authentication by the secret key pair.
set -eu

KEYS_FILE="${ATOLL_FILES_KEYS_FILE:-/run/secrets/atoll-files-keys}"
if [ ! -s "$KEYS_FILE" ]; then
    echo "atoll-files: the key secret $KEYS_FILE is missing or empty" >&2
    exit 1
fi
KEYS="$(cat "$KEYS_FILE")"
case "$KEYS" in
    *[!A-Za-z0-9_,-]*|*,*,*|,*|*,|"") echo "atoll-files: the key secret must be 'access_key,secret_key' (A-Z a-z 0-9 _ -)" >&2; exit 1 ;;
    *,*) ;;
    *) echo "atoll-files: the key secret must be 'access_key,secret_key'" >&2; exit 1 ;;
esac
# rclone reads any flag from RCLONE_<FLAG>, so the keys stay off the command
# line; list flags are CSV there, hence the quotes around the pair.
RCLONE_AUTH_KEY="\"$KEYS\""
export RCLONE_AUTH_KEY
unset KEYS
mkdir -p "${ATOLL_FILES_DATA:-/data}"

exec rclone serve s3 "${ATOLL_FILES_DATA:-/data}" --addr 0.0.0.0:9000 --force-path-style --log-level NOTICE "$@"
