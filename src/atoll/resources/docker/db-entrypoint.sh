#!/bin/sh
# Entrypoint of the Atoll `db` island (see db.Dockerfile), run as the postgres user.
#
# 1. first start: initdb on the data volume; TCP connections need a password
#    (scram-sha-256), the local socket is only for the postgres OS user;
# 2. every start: a socket-only server ensures the `atoll` role and database
#    and sets the role's password from the secret file;
# 3. exec PostgreSQL in the foreground, listening on all interfaces of the
#    container (published on the host's loopback only).
set -eu
. /usr/local/lib/atoll/island-secret.sh

PW="$(read_secret atoll-db password "${POSTGRES_PASSWORD_FILE:-/run/secrets/atoll-db-password}")"
case "$PW" in
    *[!A-Za-z0-9_-]*) fail atoll-db "the password must be URL-safe (A-Z a-z 0-9 _ -)" ;;
esac

# Runs as the postgres user (the image's USER): a data volume from an older, root-run
# island is handed over by Atoll before the start (SwarmServiceIsland.own_volume).
mkdir -p "$PGDATA"
chmod 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb -D "$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    {
        echo "listen_addresses = '*'"
        echo "password_encryption = 'scram-sha-256'"
    } >> "$PGDATA/postgresql.conf"
    {
        echo "host all all 0.0.0.0/0 scram-sha-256"
        echo "host all all ::/0 scram-sha-256"
    } >> "$PGDATA/pg_hba.conf"
fi

pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w -t 60 start >/dev/null
# printf is a shell builtin: the password never appears on a command line.
printf "%s\n" \
    "SELECT 'CREATE ROLE atoll LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'atoll')\\gexec" \
    "ALTER ROLE atoll WITH LOGIN PASSWORD '$PW';" \
    "SELECT 'CREATE DATABASE atoll OWNER atoll' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'atoll')\\gexec" \
    | psql -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null
pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
unset PW

exec postgres -D "$PGDATA"
