# Sourced by the db and files island entrypoints (COPY'd next to them, see db.Dockerfile and
# files.Dockerfile): the shared handling of the Docker secret an island reads.

# fail WHO MESSAGE: say why on stderr and stop the entrypoint.
fail() {
    echo "$1: $2" >&2
    exit 1
}

# read_secret WHO WHAT FILE: the content of the secret FILE; stops the entrypoint when it is missing or empty.
read_secret() {
    [ -s "$3" ] || fail "$1" "the $2 secret $3 is missing or empty"
    cat "$3"
}
