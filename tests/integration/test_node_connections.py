"""Real node processes on 127.0.0.1: slow and greedy clients are cut off, /health still answers.

Cut-offs are asserted against the configured timeouts with generous margins (a loaded machine
delays timers, never advances them), not as absolute speeds. Every wait is on a condition (a
socket becoming readable, an answer) and bounded by a deadline.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import statistics
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.processes import NodeProcess, running_node

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2
# A cut-off may come late under load, by this much at most, or the test fails.
LATE = 3 * HEADER_TIMEOUT + 10
SLOW_CLIENTS = 30


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # poll interval of a condition wait
    raise TimeoutError(f"timed out waiting for {what}")


def connect(node: NodeProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", node.port), timeout=10)


def read_answer(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 answer (``content-length`` framed)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, value in (line.split(":", 1) for line in lines)
    }
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    # fmt: off
    flags = [
        "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
        "--max-header-bytes", "4096",
    ]
    # fmt: on
    with running_node(workers=2, load_factor=5, extra=flags) as node:
        yield node


def test_slow_clients_are_cut_off_while_health_answers(node: NodeProcess) -> None:
    started = time.monotonic()
    selector = selectors.DefaultSelector()
    for _ in range(SLOW_CLIENTS):
        sock = connect(node)
        sock.setblocking(False)
        # The start of a request, then one header byte at a time: never a complete request.
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        selector.register(sock, selectors.EVENT_READ)
    cut_off: dict[socket.socket, float] = {}
    answers: dict[socket.socket, bytes] = {}
    health_while_held = 0
    try:
        deadline = started + HEADER_TIMEOUT + LATE
        while len(cut_off) < SLOW_CLIENTS and time.monotonic() < deadline:
            if not cut_off:
                answer = httpx.get(f"{node.url}/health", timeout=5)
                assert answer.status_code == 200
                health_while_held += 1
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    # Our next byte met the closed socket, and the reset can discard the
                    # answer unread: cut off all the same.
                    data = b""
                answers[sock] = answers.get(sock, b"") + data
                if not data:  # the node closed the connection
                    cut_off[sock] = time.monotonic() - started
                    selector.unregister(sock)
            for key in selector.get_map().values():
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                # Closed by the node, the send fails and the next select reads the end.
                with contextlib.suppress(OSError):
                    sock.send(b"a")
        assert health_while_held > 0
        assert len(cut_off) == SLOW_CLIENTS, f"{SLOW_CLIENTS - len(cut_off)} slow clients held"
        assert httpx.get(f"{node.url}/health", timeout=5).status_code == 200
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        for sock in cut_off:
            sock.close()
        selector.close()
    times = sorted(cut_off.values())
    print(
        f"\n{SLOW_CLIENTS} slow clients cut off after {times[0]:.2f}-{times[-1]:.2f} s "
        f"(median {statistics.median(times):.2f} s; --header-timeout {HEADER_TIMEOUT})"
    )
    assert times[0] >= HEADER_TIMEOUT * 0.9
    assert times[-1] <= HEADER_TIMEOUT + LATE
    read = [answer for answer in answers.values() if answer]
    assert read, "no slow client read its answer"
    for answer in read:
        assert answer.startswith(b"HTTP/1.1 408 ")
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert (body["field"], body["limit"], body["max"]) == ("headers", "headerTimeout", 2)


def test_a_silent_connection_is_closed_without_an_answer(node: NodeProcess) -> None:
    started = time.monotonic()
    with connect(node) as sock:
        sock.settimeout(HEADER_TIMEOUT + LATE)
        assert sock.recv(100) == b""
    assert HEADER_TIMEOUT * 0.9 <= time.monotonic() - started <= HEADER_TIMEOUT + LATE


def test_the_deadline_runs_again_for_the_next_request(node: NodeProcess) -> None:
    with connect(node) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, _ = read_answer(sock, timeout=10)
        assert status == 200
        started = time.monotonic()
        sock.sendall(b"GET /hea")  # the next request on the same connection stalls
        status, _, body = read_answer(sock, timeout=HEADER_TIMEOUT + LATE)
    assert (status, json.loads(body)["limit"]) == (408, "headerTimeout")
    assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9


def test_a_slow_body_is_cut_off(node: NodeProcess) -> None:
    started = time.monotonic()
    with connect(node) as sock:
        # A body promised and never sent.
        sock.sendall(b"POST /data HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        status, headers, body = read_answer(sock, timeout=BODY_TIMEOUT + LATE)
    assert (status, headers["connection"]) == (408, "close")
    assert json.loads(body)["limit"] == "bodyTimeout"
    assert time.monotonic() - started >= BODY_TIMEOUT * 0.9


def test_headers_past_the_limit_are_431(node: NodeProcess) -> None:
    with connect(node) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 8192)
        status, _, body = read_answer(sock, timeout=10)
    error = json.loads(body)
    assert (status, error["limit"], error["max"]) == (431, "maxHeaderBytes", 4096)
    assert error["actual"] > 4096


def test_requests_past_the_connection_limit_are_503_until_the_held_ones_go() -> None:
    limit = 4
    # fmt: off
    flags = ["--header-timeout", str(HEADER_TIMEOUT), "--max-connections", str(limit)]
    # fmt: on
    with running_node(workers=1, load_factor=5, extra=flags) as node:
        held = [connect(node) for _ in range(limit)]
        try:
            for sock in held:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            answer = httpx.get(f"{node.url}/health", timeout=5)
            assert answer.status_code == 503
            # The held connections are cut off at their header deadline; then the node serves.
            wait_for(
                lambda: httpx.get(f"{node.url}/health", timeout=5).status_code == 200,
                HEADER_TIMEOUT + LATE,
                "/health to answer once the held connections were cut off",
            )
        finally:
            for sock in held:
                sock.close()
