"""A CSV file's text, read a block of records at a time where that gives the same rows.

``csv.reader`` fed one line at a time (a Python call per line, through
``io.TextIOWrapper.readline``) cost an import about 3.6 µs a row, as much as
Postgres's COPY parsing and input functions together. Most files are plain: lines
without a quote character, no longer than ``MAX_ROW_CHARS``. For those, a block of
lines is split into fields by ``str.split``, which is what ``csv.reader`` (the
default dialect) makes of a line without quotes, and a block with quotes whose every
line is a whole record is parsed by one ``csv.reader`` over its lines. Anything else
(a quoted field spanning lines, a lone carriage return, a long line, the last line
without a line break) is read record by record through ``Lines`` exactly as before.

``Text`` decodes the bytes as ``TextIOWrapper(encoding="utf-8-sig",
errors="surrogateescape", newline="")`` did (the same decoder, the same 8 KB reads),
so the lines are the same; and a read error (a truncated gzip member) is raised only
once the complete lines decoded before it have been handed out, as ``readline`` did.
"""

from __future__ import annotations

import codecs
import csv
import io
from itertools import repeat
from typing import Protocol

__all__ = ["CHUNK_BYTES", "Binary", "Lines", "RowTooLong", "Text"]

# What TextIOWrapper reads at a time (read1): an error loses no more than it did.
CHUNK_BYTES = 8192
# Text looked at for a block of records: ~800 rows of a typical contact file.
_BLOCK_CHARS = 1 << 16


class Binary(Protocol):
    """What ``Text`` reads: a buffered binary file or a ``gzip.GzipFile``."""

    def read1(self, size: int = ..., /) -> bytes: ...


class RowTooLong(Exception):
    """A record longer than the limit of ``Lines``; the rest of its line was skipped."""


class Text:
    """The decoded text of a binary stream, consumed by whole blocks of records
    (``block``) or a line at a time (``readline``)."""

    def __init__(self, binary: Binary, limit: int) -> None:
        self._binary = binary
        self._limit = limit  # the longest record, terminator included
        self._decoder = io.IncrementalNewlineDecoder(
            codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape"),
            translate=False)
        self._text = ""  # decoded; self._pos on not yet consumed
        self._pos = 0
        self._dropped = 0  # characters consumed and let go before self._text
        self._eof = False
        self._error: BaseException | None = None
        # Records are read line by line (Lines) until this offset: the text before it
        # could not be read as a block.
        self._by_line_until = 0

    def _more(self) -> bool:
        """Decode one more chunk onto the text; False at the end of the data. A read
        error is raised here (one that ``_fill`` put off, too)."""
        if self._error is not None:
            raise self._error
        if self._eof:
            return False
        data = self._binary.read1(CHUNK_BYTES)
        decoded = self._decoder.decode(data, final=not data)
        self._eof = not data
        self._dropped += self._pos
        self._text = self._text[self._pos:] + decoded
        self._pos = 0
        return True

    def readline(self, size: int) -> str:
        """The next line (its terminator, \\n, \\r\\n or \\r, included) cut at ``size``
        characters, as ``TextIOWrapper.readline(size)``; "" at the end."""
        while True:
            text, pos = self._text, self._pos
            newline = text.find("\n", pos)
            ret = text.find("\r", pos, newline if newline >= 0 else len(text))
            if ret >= 0:  # never the last character: the decoder holds a \r back
                end = ret + 2 if text.startswith("\n", ret + 1) else ret + 1
            else:
                end = newline + 1 if newline >= 0 else -1
            if end < 0 and len(text) - pos < size and self._more():
                continue
            if end < 0:
                end = len(text)
            end = min(end, pos + size)
            self._pos = end
            return text[pos:end]

    def block(self) -> list[list[str]] | None:
        """The fields of the next whole lines, one record each (an empty list for a
        blank line), when reading them as a block gives what ``Lines`` would; else
        None, and the records that follow are read line by line up to where the
        block would have ended. None at the end of the text too."""
        if self._dropped + self._pos < self._by_line_until:
            return None
        self._fill()
        text, pos = self._text, self._pos
        end = text.rfind("\n", pos) + 1
        fields = self._split(text[pos:end]) if end > pos else None
        if fields is None:
            self._by_line_until = self._dropped + max(end, pos + 1)
            return None
        self._pos = end
        return fields

    def _fill(self) -> None:
        """At least a block of text ahead, if the data has it. A read error stops the
        filling: the lines before it are handed out first, ``_more`` raises it after."""
        chunks = []
        ahead = len(self._text) - self._pos
        try:
            while ahead < _BLOCK_CHARS and self._error is None and not self._eof:
                data = self._binary.read1(CHUNK_BYTES)
                decoded = self._decoder.decode(data, final=not data)
                self._eof = not data
                chunks.append(decoded)
                ahead += len(decoded)
        except Exception as exc:  # raised by _more once the lines before it are out
            self._error = exc
        finally:
            if chunks:
                self._dropped += self._pos
                self._text = self._text[self._pos:] + "".join(chunks)
                self._pos = 0

    def _split(self, body: str) -> list[list[str]] | None:
        """The fields of each line of ``body`` (whole lines ending in \\n), or None
        when that might differ from reading them one by one."""
        if "\r" in body:
            if body.count("\r") != body.count("\r\n"):
                return None  # a lone \r ends a line too
            body = body.replace("\r\n", "\n")
        lines = body.split("\n")
        lines.pop()  # what follows the last \n: nothing
        if max(map(len, lines)) + 2 > self._limit:
            return None  # a record too long: Lines says so
        if '"' in body:
            return _quoted(lines)
        if "" in lines:
            return [line.split(",") if line else [] for line in lines]
        return list(map(str.split, lines, repeat(",")))


def _quoted(lines: list[str]) -> list[list[str]] | None:
    """``csv.reader``'s fields of each line, when every line is a record of its own
    (no quoted field goes on to the next line): a blank line after the last one must
    come out as a record of its own too, not as part of a field."""
    try:
        records = list(csv.reader([*(line + "\n" for line in lines), "\n"]))
    except csv.Error:
        return None  # the line-by-line reader says which row
    if len(records) != len(lines) + 1:
        return None
    records.pop()
    return records


class Lines:
    """``Text`` as lines for ``csv.reader``, no record longer than ``limit``.

    A longer line is read no further than the limit: the rest is skipped a chunk at
    a time and ``RowTooLong`` raised, which the reader passes on; the next record
    starts afresh on the following line (``csv.reader`` resets its state for every
    record). ``record_done`` is called after each record, so that a record of many
    short lines (quoted line breaks) is held to the same limit."""

    def __init__(self, text: Text, limit: int) -> None:
        self._text = text
        self._limit = limit
        self._record = 0  # characters of the record being read

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        line = self._text.readline(self._limit + 1)
        if not line:
            raise StopIteration
        self._record += len(line)
        if self._record > self._limit:
            self._record = 0
            if line[-1] not in "\r\n":
                while (chunk := self._text.readline(self._limit)) and chunk[-1] not in "\r\n":
                    pass
            raise RowTooLong
        return line

    def record_done(self) -> None:
        self._record = 0
