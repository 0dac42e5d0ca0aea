"""The campaign report: the summary as a table, every attempt as a streamed CSV file,
and the files they are written to (complete or not at all)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import queue
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from rich.table import Table

# (label, column of campaign_summary) in the order an operator reads them.
SUMMARY_ROWS = (
    ("state", "state"), ("contacts", "contacts"), ("done", "done"), ("failed", "failed"),
    ("skipped", "skipped"), ("pending", "pending"), ("waiting for retry", "retry_wait"),
    ("dialing", "dialing"), ("in a call", "in_call"), ("attempts", "attempts"),
    ("calls ended", "calls_ended"), ("answered", "answered"),
    ("answer rate %", "answer_rate_pct"), ("human", "human"), ("machine", "machine"),
    ("voicemail left", "voicemail_left"), ("answered, AMD off", "answered_no_amd"),
    ("fax", "fax"), ("busy", "busy"), ("no answer", "no_answer"),
    ("call failed, may retry", "failed_transient"),
    ("call failed for good", "failed_permanent"), ("canceled", "canceled"),
    ("outcome not decided", "undecided"), ("refused by Twilio", "rejected"),
    ("void (no call was made)", "voided"), ("average talk time s", "avg_talk_seconds"),
    ("completion %", "completion_pct"),
)

# gzip level 6 (zlib's default): about a third of level 9's CPU for a file a few per
# cent larger, so compressing keeps up with the export.
GZIP_LEVEL = 6

Sink = Callable[[bytes], Coroutine[Any, Any, None]]


def summary_table(name: str, summary: Mapping[str, Any]) -> Table:
    table = Table(title=f"campaign {name}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, column in SUMMARY_ROWS:
        value = summary[column]
        table.add_row(label, "-" if value is None else str(value))
    return table


class FileWriteError(Exception):
    """The export file could not be created or written; the message says which and why
    (``__cause__``: the OSError). Kept apart from OSError, which a lost database
    connection raises as well."""


def is_gzip_name(path: Path) -> bool:
    """An export to ``*.gz`` is gzip-compressed (as ``dialer import`` reads them)."""
    return path.name.lower().endswith(".gz")


@contextlib.contextmanager
def _file_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise FileWriteError(f"{doing} failed ({exc.strerror or exc})") from exc


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[IO[bytes]]:
    """A new file that becomes ``path`` only once it is complete: a failed or
    interrupted export leaves what was at ``path`` before as it was, and no partial
    file. Created beside ``path`` (so the rename is atomic) with the permissions a
    plain open would give it. A device or a pipe (``/dev/stdout``, a FIFO) is written
    in place: there is nothing to keep, and renaming over it would replace it."""
    if path.exists() and not path.is_file():
        with _file_errors("opening"):
            out = path.open("wb")
        with out:
            yield out
        return
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    with _file_errors("creating a file beside it"):
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        with _file_errors("renaming the finished file"):
            os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_page(path: Path, text: str) -> None:
    """Write a report page to ``path``, replacing what was there only once complete."""
    with _replacing(path) as out, _file_errors("writing"):
        out.write(text.encode("utf-8"))


class _WriterThread:
    """Writes (and gzip-compresses) the chunks in a thread of its own, so the event loop
    goes on reading the COPY meanwhile: zlib and the file writes release the GIL, and a
    gzip export was as slow as its compression plus the query. At most ``QUEUED``
    chunks (asyncpg hands over what one socket read brought, 256 KiB at most) wait, so
    memory stays bounded when the disk is slower than the database."""

    QUEUED = 32

    def __init__(self, out: IO[bytes] | gzip.GzipFile) -> None:
        self.out = out
        self.chunks: queue.Queue[bytes | None] = queue.Queue(self.QUEUED)
        self.failed: FileWriteError | None = None
        self.thread = threading.Thread(target=self._run, name="export-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.chunks.get()) is not None:
            if self.failed is None:
                try:
                    with _file_errors("writing"):
                        self.out.write(chunk)
                except FileWriteError as exc:
                    self.failed = exc  # raised by the next put(); the rest is dropped

    def _raise_failure(self) -> None:
        if self.failed is not None:
            raise self.failed

    async def put(self, chunk: bytes) -> None:
        self._raise_failure()
        try:
            self.chunks.put_nowait(chunk)
        except queue.Full:
            await asyncio.to_thread(self.chunks.put, chunk)

    async def finish(self) -> None:
        """Wait for every chunk to be written; raises the writing's error, if any."""
        await asyncio.to_thread(self.chunks.put, None)
        await asyncio.to_thread(self.thread.join)
        self._raise_failure()

    def abandon(self) -> None:
        """Stop the thread after a failed export (what it still holds is dropped)."""
        self.failed = self.failed or FileWriteError("the export failed")
        while True:  # the thread now drops what it takes, so room is made at once
            try:
                self.chunks.put_nowait(None)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.chunks.get_nowait()
        self.thread.join()


async def write_export(path: Path, copy: Callable[[Sink], Awaitable[int]]) -> int:
    """Run ``copy`` (a COPY ... TO STDOUT that feeds the sink it is given) into
    ``path``, gzip-compressed when the name ends in ``.gz``; returns its row count.

    Each chunk is written as it arrives (by a thread, see _WriterThread), so memory does
    not grow with the export. The gzip header carries no name and no time, so the same
    rows give the same bytes."""
    with _replacing(path) as raw:
        out: IO[bytes] | gzip.GzipFile = raw
        if is_gzip_name(path):
            out = gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                compresslevel=GZIP_LEVEL, mtime=0)
        writer = _WriterThread(out)
        try:
            rows = await copy(writer.put)
            await writer.finish()
        except BaseException:
            writer.abandon()
            raise
        with _file_errors("writing"):
            out.close()  # a GzipFile writes its trailer; the file itself closes after
    return rows
