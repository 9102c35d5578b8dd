"""The failover harness's own checks: records, writer logs, writable mounts and the proxy."""

from __future__ import annotations

import socket
import threading

from tests.failover.proxy import TcpProxy
from tests.failover.records import (
    RECORD_SIZE,
    check_records,
    durable_problems,
    parse_log,
    record,
)
from tests.failover.watch import Filesystem, MountLine, doubles, filesystems, parse_mounts


def records(seed: str, numbers: range) -> bytes:
    """The bytes of records ``numbers`` of ``seed``, back to back."""
    return b"".join(record(seed, n) for n in numbers)


def test_records_are_fixed_size_and_seeded() -> None:
    """Every record has the same size, and another seed's record never passes for it."""
    assert {len(record("a", n)) for n in (0, 7, 12345)} == {RECORD_SIZE}
    assert record("a", 3) != record("b", 3)


def test_check_counts_intact_records_and_finds_later_ones() -> None:
    """Intact records are counted from 0; a torn tail and records after a gap are reported."""
    data = records("s", range(5))
    assert check_records("s", data).intact == 5
    torn = check_records("s", data + record("s", 5)[:100])
    assert (torn.intact, torn.tail, torn.later) == (5, 100, ())
    gap = check_records("s", data + b"\0" * RECORD_SIZE + record("s", 6))
    assert (gap.intact, gap.later) == (5, (6,))
    wrong = check_records("s", records("other", range(3)))
    assert wrong.intact == 0


def log_of(fsynced: int, errors: tuple[int, ...] = ()) -> list[str]:
    """A writer log with records 0..fsynced-1 fsynced at times 1, 2, ..., then errors."""
    lines = ["start s 7:3 0.0\n"]
    lines += [f"ok {n} {n + 1.0}\n" for n in range(fsynced)]
    lines += [f"error {n} EIO {100.0 + n}\n" for n in errors]
    return lines


def test_log_parsing_ignores_a_line_cut_short() -> None:
    """Fsyncs and errors are read with their times; a last line without its newline is not."""
    log = parse_log([*log_of(3, errors=(3, 3)), "ok 3 9"])
    assert (log.seed, log.device, log.last_fsynced) == ("s", "7:3", 2)
    assert log.fsynced_after(1.5) == [1, 2]
    assert [e[:2] for e in log.errors_after(0)] == [(3, "EIO"), (3, "EIO")]


def test_durable_problems() -> None:
    """Missing fsynced records, extra ones, junk after them and too-new records are problems."""
    log = parse_log(log_of(4))
    assert durable_problems(log, check_records("s", records("s", range(4)))) == []
    assert durable_problems(log, check_records("s", records("s", range(5)))) == []
    missing = durable_problems(log, check_records("s", records("s", range(3))))
    assert "only records 0..2" in missing[0]
    assert durable_problems(log, check_records("s", records("s", range(3))), racing=True) == []
    assert durable_problems(log, check_records("s", records("s", range(2))), racing=True)
    assert durable_problems(log, check_records("s", records("s", range(7))))
    junk = records("s", range(4)) + b"\0" * RECORD_SIZE + record("s", 9)
    assert durable_problems(log, check_records("s", junk))
    assert durable_problems(log, check_records("s", records("s", range(5))), newest=3)


MOUNTINFO = (
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "90 27 7:3 / /x/node1/mounts/d1 rw,relatime - ext4 /dev/loop3 rw\n"
    "91 27 7:4 / /x/node2/mounts/d1 rw,relatime - ext4 /dev/loop4 rw\n"
    "92 27 7:5 / /x/node2/mounts/d2 ro,relatime - ext4 /dev/loop5 ro\n"
    "93 27 7:3 / /elsewhere/bind rw,relatime shared:4 - ext4 /dev/loop3 rw\n"
)


def test_parse_mounts_reads_both_option_sets() -> None:
    """A mount is read-write only when its mount and superblock options both say so."""
    found = parse_mounts(MOUNTINFO + "94 27 7:6 / /y rw - ext4 /dev/loop6 ro\nbroken line\n")
    assert MountLine("7:5", "/x/node2/mounts/d2", False) in found
    assert MountLine("7:6", "/y", False) in found
    assert MountLine("7:3", "/elsewhere/bind", True) in found


def test_doubles_count_devices_not_mounts() -> None:
    """Two writable devices of one dataset are a double; a bind mount or a read-only one is not."""
    mounts = parse_mounts(MOUNTINFO)
    datasets = {"7:3": "d1", "7:4": "d1", "7:5": "d2"}
    seen = filesystems(mounts, datasets, {"7:3": False, "7:4": False, "7:5": False})
    assert doubles(seen) == {"d1": {"7:3", "7:4"}}
    fenced = filesystems(mounts, datasets, {"7:3": True, "7:4": False, "7:5": False})
    assert Filesystem("d1", "7:3", "/elsewhere/bind", False) in fenced
    assert doubles(fenced) == {}
    assert doubles(filesystems(mounts, {"7:3": "d1", "7:5": "d1"}, {})) == {}


def echo_server() -> tuple[socket.socket, threading.Thread]:
    """A loopback server echoing each connection's bytes back."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_proxy_forwards_drops_while_cut_and_heals() -> None:
    """Bytes go through; while cut, nothing comes back on old or new connections; heal restores."""
    server, _ = echo_server()
    proxy = TcpProxy(server.getsockname()[1]).start()
    try:
        before = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        before.sendall(b"hello")
        assert before.recv(5) == b"hello"
        proxy.cut()
        during = socket.create_connection(("127.0.0.1", proxy.port), timeout=0.3)
        for conn in (before, during):
            conn.settimeout(0.3)
            conn.sendall(b"lost")
            try:
                answer = conn.recv(4)
            except TimeoutError:
                answer = b"silence"
            assert answer == b"silence"
        proxy.heal()
        assert before.recv(4) == b""  # closed by the heal: the client reconnects
        after = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        after.sendall(b"back")
        assert after.recv(4) == b"back"
        assert proxy.dropped >= 8
        for conn in (before, during, after):
            conn.close()
    finally:
        proxy.close()
        server.close()
