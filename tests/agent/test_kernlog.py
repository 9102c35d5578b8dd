"""The kernel log reader: parsing /dev/kmsg records, and the real /dev/kmsg as root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.kernlog import KmsgLog, is_error, mentions, parse_record


def test_parse_record():
    """A kmsg record gives its syslog level and message; other bytes give None."""
    raw = b"4,1234,881588182,-;EXT4-fs warning (device loop1): I/O error 3 writing\n DEV=b7:1\n"
    assert parse_record(raw) == (4, "EXT4-fs warning (device loop1): I/O error 3 writing")
    assert parse_record(b"garbage") is None
    assert parse_record(b"x,1;msg") is None


def test_errors_by_level_or_words():
    """Error levels count whatever the words; informational lines only with error words."""
    assert is_error(3, "anything")
    assert is_error(6, "EXT4-fs (loop1): failed to convert -- potential data loss!")
    assert not is_error(6, "EXT4-fs (loop0): mounted filesystem r/w")
    assert not is_error(
        3, "operation not supported error, dev loop0, sector 130944 op 0x9:(WRITE_ZEROES)"
    )


def test_mentions_whole_device_names():
    """loop1 is mentioned by '(loop1)' and 'dev loop1,', not by 'loop10'."""
    assert mentions("EXT4-fs (loop1): error", "loop1")
    assert mentions("I/O error, dev loop1, sector 8", "loop1")
    assert not mentions("EXT4-fs (loop10): error", "loop1")


def test_unreadable_log_fails_soft(tmp_path: Path):
    """Without a readable kernel log, no errors are reported and nothing raises."""
    log = KmsgLog(str(tmp_path / "no-kmsg"))
    assert log.errors(["/dev/loop1"]) == {}
    assert log.errors(["/dev/loop1"]) == {}


@pytest.mark.root
@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/kmsg"), reason="needs root and /dev/kmsg"
)
def test_real_kmsg_error_is_seen_until_the_device_goes():
    """A line written to /dev/kmsg after start is reported for its device, until it is gone."""
    log = KmsgLog()
    name = "loop98765"
    assert log.errors([f"/dev/{name}"]) == {}
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(f"<3>shoal-test: I/O error, dev {name}, sector 8\n")
    try:
        found = log.errors([f"/dev/{name}", "/dev/loop98766"])
        assert found == {f"/dev/{name}": f"shoal-test: I/O error, dev {name}, sector 8"}
        assert log.errors([f"/dev/{name}"]) == found
        assert log.errors([]) == {}
        assert log.errors([f"/dev/{name}"]) == {}
    finally:
        log.close()
