"""The block reader gives the records the line-by-line reader gives, on any text."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.csvtext import CHUNK_BYTES, Lines, RowTooLong, Text

LIMIT = 40  # small, so that long lines and long records come up often

# Every character the readers treat apart: separators of csv and of str.splitlines,
# quotes, NUL, a byte order mark, multi-byte UTF-8, and bytes that are not UTF-8.
PIECES = [b",", b'"', b"\n", b"\r", b"\r\n", b"a", b"bc", b" ", b"\x00", b"\t", b"\x0c",
          b"\x1c", "\u2028".encode(), "\x85".encode(), "é".encode(), b"\xff", b"\xef\xbb\xbf",
          b"+14155552671", b"x" * 50, b'"q\nr"', b"\r\r\n"]
texts = st.lists(st.sampled_from(PIECES), max_size=300).map(b"".join)


class Failing(io.RawIOBase):
    """Bytes, then an OSError once ``fail_at`` bytes have been read (None: never)."""

    def __init__(self, data: bytes, fail_at: int | None) -> None:
        self._data = io.BytesIO(data)
        self._fail_at = fail_at

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._fail_at is not None and self._data.tell() >= self._fail_at:
            raise OSError("the disk went away")
        size = len(buffer)
        if self._fail_at is not None:
            size = min(size, self._fail_at - self._data.tell())
        return self._data.readinto(buffer[:size])


def _binary(data: bytes, fail_at: int | None, chunk: int) -> io.BufferedReader:
    return io.BufferedReader(Failing(data, fail_at), buffer_size=chunk)


def _records(data: bytes, *, blocks: bool, fail_at: int | None = None,
             chunk: int = CHUNK_BYTES) -> list[object]:
    """What reading ``data`` gives, record by record: fields, "too long", "csv error"
    or "read error" (the last)."""
    text = Text(_binary(data, fail_at, chunk), LIMIT)
    lines = Lines(text, LIMIT)
    reader = csv.reader(lines)
    out: list[object] = []
    while True:
        block = text.block() if blocks else None
        if block is not None:
            out.extend(block)
            continue
        try:
            out.append(next(reader))
        except StopIteration:
            return out
        except RowTooLong:
            out.append("too long")
        except csv.Error:
            out.append("csv error")
        except OSError:
            out.append("read error")
            return out
        lines.record_done()


@settings(max_examples=500, deadline=None)
@given(data=texts, fail=st.none() | st.integers(0, 3000),
       chunk=st.sampled_from([1, 7, 64, CHUNK_BYTES]))
def test_blocks_give_the_records_of_line_by_line_reading(
    data: bytes, fail: int | None, chunk: int
) -> None:
    assert (_records(data, blocks=True, fail_at=fail, chunk=chunk)
            == _records(data, blocks=False, fail_at=fail, chunk=chunk))


def _lines(readline: Callable[[int], str], sizes: list[int]) -> list[str]:
    out = []
    try:
        for size in sizes * 20:
            out.append(readline(size))
            if not out[-1]:
                break
    except OSError:
        out.append("read error")
    return out


@settings(max_examples=300, deadline=None)
@given(data=texts, sizes=st.lists(st.integers(1, 60), min_size=1, max_size=40),
       fail=st.none() | st.integers(0, 3000), chunk=st.sampled_from([1, 7, 64, CHUNK_BYTES]))
def test_readline_is_textiowrapper_readline(
    data: bytes, sizes: list[int], fail: int | None, chunk: int
) -> None:
    """The lines (\\n, \\r\\n or \\r), their cuts at a size and where a read error
    comes are those of the TextIOWrapper the importer read through before."""
    wrapper = io.TextIOWrapper(_binary(data, fail, chunk), encoding="utf-8-sig",
                               errors="surrogateescape", newline="")
    text = Text(_binary(data, fail, chunk), LIMIT)
    assert _lines(text.readline, sizes) == _lines(wrapper.readline, sizes)


def test_plain_lines_are_split_as_a_block() -> None:
    data = b"a,b\r\n\r\n c ,\r\n\"d,e\",f\r\n"
    text = Text(io.BufferedReader(io.BytesIO(data)), LIMIT)
    assert text.block() == [["a", "b"], [], [" c ", ""], ["d,e", "f"]]
    assert text.block() is None  # the end: the line-by-line reader says so
    assert text.readline(LIMIT) == ""
