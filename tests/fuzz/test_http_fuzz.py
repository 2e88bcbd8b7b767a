"""A bounded raw-socket fuzz of the router and a replica: random and mutated HTTP requests on
127.0.0.1, after which both still serve correct predictions (and the router still checks keys).

Bounded by count (``ROUNDS`` requests per server, each connection given at most
``READ_FOR`` seconds), deterministic (a fixed seed), so a failure reproduces.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from atoll.api.keys import KEY_PREFIX, key_hash
from router.router_helpers import healthy, start_replica, start_router, write_replica_secrets, write_state
from support.processes import ServerProcess

pytestmark = pytest.mark.slow

ROUNDS = 250
READ_FOR = 0.2
SEED = 12
SECRET = "s" * 43  # the replica secret of proj/dep

VALID = (
    b"POST /predict?project=proj&deploy=dep HTTP/1.1\r\nhost: x\r\nauthorization: Bearer KEY\r\n"
    b"content-type: text/plain\r\ncontent-length: 5\r\n\r\nhello"
)
NASTY = [
    b"\r\n", b"\r\n\r\n", b"\0", b"\xff", b":", b" ", b"%00", b"%", b"../", b"?", b"&", b"=",
    b"transfer-encoding: chunked\r\n", b"content-length: 5\r\n", b"content-length: -1\r\n",
    b"content-length: 99999999999999999999\r\n", b"expect: 100-continue\r\n", b"0\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n", b"project=../../etc&deploy=x",
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(6)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:  # flip a byte
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert something nasty
            out[at:at] = rng.choice(NASTY)
        elif op == 2 and out:  # delete a range
            del out[at:at + rng.randint(1, 20)]
        elif op == 3:  # duplicate a header line
            lines = bytes(out).split(b"\r\n")
            if len(lines) > 2:
                i = rng.randrange(1, len(lines) - 1)
                lines.insert(i, lines[i])
                out = bytearray(b"\r\n".join(lines))
        elif op == 4:  # a long header (bounded: 64 KiB)
            out[at:at] = b"x-junk: " + b"A" * rng.randint(1, 65536) + b"\r\n"
        else:  # random bytes
            out[at:at] = rng.randbytes(rng.randint(1, 64))
    return bytes(out)


def _request(rng: random.Random, valid: bytes) -> bytes:
    kind = rng.random()
    if kind < 0.15:
        return rng.randbytes(rng.randint(0, 512))
    if kind < 0.25:
        return valid + valid  # pipelined
    return _mutate(rng, valid)


def _send(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, read for at most READ_FOR seconds; the answer (possibly empty)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(READ_FOR)
        answer = b""
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            while len(answer) < 1 << 20:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (TimeoutError, ConnectionError):
            pass
    return answer


class Target:
    def __init__(self, router: ServerProcess, replica: ServerProcess, key: str) -> None:
        self.router, self.replica, self.key = router, replica, key

    def predict_via_router(self, key: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.router.url}/predict", params={"project": "proj", "deploy": "dep"},
                          content=b"hello", timeout=10,
                          headers={"authorization": f"Bearer {key or self.key}"})


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("httpfuzz")
    key = KEY_PREFIX + "f" * 43
    pepper = b"p" * 32
    keys_file = tmp / "keys.json"
    keys_file.write_bytes(orjson.dumps({"version": 1, "pepper": pepper.hex(), "keys": [
        {"name": "k", "proj": "proj", "deploy": None, "expires": None, "prefix": key[:12],
         "hash": key_hash(key, pepper)}]}))
    started: list[ServerProcess] = []
    try:
        replica = start_replica(tmp, "dep-1", replica={"secret": SECRET})
        started.append(replica)
        write_state(tmp / "state", "proj", "dep", [healthy(replica)])
        secrets = write_replica_secrets(tmp / "replica-secrets.json", {"proj/dep": SECRET})
        started.append(start_router(tmp, tmp / "state",
                                    auth=("--keys-file", str(keys_file), "--replica-secrets", str(secrets))))
        yield Target(started[1], replica, key)
    finally:
        for process in started:
            process.stop()


def _serves(target: Target) -> None:
    answer = target.predict_via_router()
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == "hello"
    assert target.predict_via_router(KEY_PREFIX + "g" * 43).status_code == 401
    direct = httpx.post(f"{target.replica.url}/predict", content=b"hello", timeout=10,
                        headers={"x-atoll-replica-secret": SECRET})
    assert direct.status_code == 200 and direct.json()["result"] == "hello"
    assert httpx.post(f"{target.replica.url}/predict", content=b"hello", timeout=10).status_code == 403


@pytest.mark.parametrize("server", ["router", "replica"])
def test_random_and_mutated_requests_leave_both_serving(target: Target, server: str) -> None:
    _serves(target)
    rng = random.Random(f"{SEED}-{server}")
    port = target.router.port if server == "router" else target.replica.port
    valid = VALID.replace(b"KEY", target.key.encode())
    if server == "replica":  # a request the replica would serve: fuzzing reaches past the secret check
        valid = valid.replace(b"host: x\r\n", b"host: x\r\nx-atoll-replica-secret: " + SECRET.encode() + b"\r\n")
    statuses: dict[str, int] = {}
    for _ in range(ROUNDS):
        answer = _send(port, _request(rng, valid))
        status = answer[9:12].decode("latin-1") if answer.startswith(b"HTTP/1.1 ") else "none"
        statuses[status] = statuses.get(status, 0) + 1
        assert not answer.startswith(b"HTTP/1.1 5") or answer[9:12] in (b"502", b"503"), answer[:300]
    print(f"\n{server}: {ROUNDS} fuzzed requests, answers by status: {dict(sorted(statuses.items()))}")
    for process in (target.router, target.replica):
        assert process.proc.poll() is None, f"{process.name} died: {process.log.read_text()[-2000:]}"
    _serves(target)
