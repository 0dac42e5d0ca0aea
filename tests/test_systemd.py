"""The notify protocol over a real unix datagram socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from dialer.systemd import Notifier, watchdog_interval


def _receiver(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    return sock


def test_messages_reach_the_socket(tmp_path: Path) -> None:
    sock = _receiver(tmp_path / "notify")
    notifier = Notifier(str(tmp_path / "notify"))
    notifier.ready("dialing")
    notifier.watchdog()
    notifier.stopping()
    received = [sock.recv(4096).decode() for _ in range(3)]
    notifier.close()
    sock.close()
    assert received == ["READY=1\nSTATUS=dialing", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopping"]


def test_abstract_socket_address() -> None:
    name = f"dialer-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    notifier = Notifier("@" + name)
    notifier.status("hello")
    notifier.close()
    assert sock.recv(100) == b"STATUS=hello"
    sock.close()


def test_without_systemd_it_is_a_no_op() -> None:
    notifier = Notifier(None)
    assert not notifier.enabled
    notifier.ready("x")  # must not raise


def test_missing_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    notifier.ready("x")
    notifier.close()


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval() is None
