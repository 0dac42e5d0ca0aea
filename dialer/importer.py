"""CSV -> contacts: stream a contact file into a campaign, fast, in bounded memory.

Reading and checking the file is ``dialer.contactfile``'s job; this module runs it
beside the database work and loads what it produces. Why it is built this way:

* **A parser process feeding the loader.** The file is read and its rows turned into
  COPY text by a parser process of its own (on one CPU; ``auto_workers``), while this
  process loads the previous batches: the two cores a small server has are both
  busy. For small files, or ``workers=0``, the parser is a thread of this process.
  The parser is spawned (not forked: this process runs an event loop and holds
  database sockets), so a program calling this must guard its entry point with
  ``if __name__ == "__main__"`` (the ``dialer`` command does); it exits when the
  importing process dies, even by ``kill -9``.
* **COPY straight into contacts.** Imports into one campaign take turns (an advisory
  lock). When the campaign had no contacts when its turn came, nothing can collide:
  the parser sends every number once, so each batch is one COPY into ``contacts``,
  on one of two connections (the database's work is most of the cost, and a COPY
  keeps one backend busy). A COPY is one statement: a batch is in or out, never half.
  Ids are reserved in file order first, so contacts keep the file's order.
* **A merge otherwise.** Into a campaign that had contacts (a re-run, an interrupted
  import run again, more rows for a campaign) a batch is COPYed into a staging table
  and merged with ``INSERT ... ON CONFLICT DO NOTHING``, one batch after another:
  what is already there counts as a duplicate, so the same file always ends as the
  same contacts. The same happens past ``contactfile.SEEN_LIMIT`` numbers, and if a
  COPY meets a number that some other writer stored meanwhile.
* **Do-not-call.** Each batch's numbers are checked against the lists
  (``repository.import_dnc_listed``) and those listed are stored as skipped (reason
  ``dnc``).
* **Where a contact may be.** Its zones come from the ``timezone`` column, else from
  every zone of its number; its US states from the ``state`` column and from the
  number's area code (``dialer.location.locate``). Both are stored with their
  sources, for the calling window and for the record of each attempt.

Nothing here prints: results come back as ``ImportResult`` and progress goes to an
optional callback, so commands decide what the operator sees. The figures of a run
(CPU per row reading, parsing and loading; the number cache) are logged at debug
level as ``import_finished``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import structlog

from dialer import db, repository
from dialer.contactfile import (
    DNC_TAIL,
    ERROR_COLUMNS,
    EXPIRES_COLUMN,
    MAX_FIELD_CHARS,
    MAX_ROW_CHARS,
    PENDING_TAIL,
    STATE_COLUMN,
    TIMEZONE_COLUMN,
    ContactBatch,
    ErrorFile,
    Failed,
    Finished,
    ImportFileError,
    ImportStopped,
    Layout,
    Message,
    Parsed,
    ParseJob,
    Record,
    Rejected,
    check_region,
    default_errors_path,
    parse_file,
    parse_header,
    parse_rows,
)

__all__ = [
    "BATCH_ROWS",
    "ERROR_COLUMNS",
    "EXPIRES_COLUMN",
    "MAX_FIELD_CHARS",
    "MAX_ROW_CHARS",
    "STATE_COLUMN",
    "TIMEZONE_COLUMN",
    "ImportFileError",
    "ImportResult",
    "ImportStopped",
    "Layout",
    "Record",
    "Rejected",
    "auto_workers",
    "check_region",
    "default_errors_path",
    "import_contacts",
    "parse_header",
    "parse_rows",
    "run_pipeline",
]

log = structlog.get_logger(__name__)

# Rows a batch (one COPY, one commit). 25,000 held two batches' rows and lines in each
# process at once: 288-293 MB for a 1M-row import, all processes together, against
# 231-238 MB at 10,000, at the same rows/s within the machine's noise (bench/import.py).
BATCH_ROWS = 10_000
# Below this size a parser process costs more to start than it saves.
PARALLEL_MIN_BYTES = 8 << 20
# The parser process's first cycle-collector threshold (Python's default: 700).
_PARSER_GC_THRESHOLD = 100_000
# Connections loading a campaign that was empty: a COPY keeps one backend busy, and
# a second one overlaps the next batch's COPY with the first's.
_LOADERS = 2

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did. ``read`` = loaded + duplicates + dnc + rejected (when the
    import stopped at damage, the rows read before it)."""

    read: int
    loaded: int
    duplicates: int
    dnc: int
    rejected: int
    errors_path: Path | None
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


def auto_workers(size: int) -> int:
    """Parser processes for a file of ``size`` bytes: one for a big file (it reads the
    file in order, and the database, not the parsing, is what limits an import on
    any number of CPUs), none for a small one."""
    return 1 if size >= PARALLEL_MIN_BYTES else 0


# ---- the parser, in a process or a thread ------------------------------------------


def _die_with_parent() -> None:
    """Parser start-up: exit when the importing process dies, even by ``kill -9``
    (blocked sending a batch, it would otherwise wait for a reader that is gone)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="dialer-import-watch-parent", daemon=True).start()


def _parser_process(job: ParseJob, out: multiprocessing.connection.Connection) -> None:
    _die_with_parent()
    # A batch being read holds two containers a row (its fields, its numbered tuple),
    # 50,000 live objects, and Python's cycle collector went through them again and
    # again (every 700 allocations, then its older generations with the library's
    # metadata): 3.2 of the parser's 9.7 µs a row. Parsing makes no cycles of its own,
    # so a collection now comes after 100,000 objects more than were freed; garbage
    # cycles (from the library's error paths) are still collected, bounded by that.
    gc.set_threshold(_PARSER_GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        parse_file(job, out.send)
    finally:
        out.close()


class _Cancelled(Exception):
    """The importing side stopped: the parser thread ends."""


class _Parser(Protocol):
    async def next(self) -> Message: ...


class _ParserProcess:
    def __init__(self, job: ParseJob) -> None:
        context = multiprocessing.get_context("spawn")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_parser_process, args=(job, send),
                                        name="dialer-import-parser", daemon=True)
        self._process.start()
        send.close()  # the parser's end: a dead parser then reads as EOF here
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="dialer-import-receive")

    async def next(self) -> Message:
        try:
            message: Message = await asyncio.get_running_loop().run_in_executor(
                self._reader, self._receive.recv)
        except EOFError:
            raise RuntimeError(
                f"the import's parser process ended unexpectedly "
                f"(exit code {self._process.exitcode})") from None
        return message

    def close(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._receive.close()
        self._reader.shutdown(wait=False)


class _ParserThread:
    def __init__(self, job: ParseJob) -> None:
        self._queue: queue.Queue[Message | BaseException] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(job,),
                                        name="dialer-import-parser", daemon=True)
        self._thread.start()

    def _put(self, message: Message | BaseException) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(message, timeout=0.1)
                return
        raise _Cancelled

    def _run(self, job: ParseJob) -> None:
        try:
            parse_file(job, self._put)
        except _Cancelled:
            pass
        except BaseException as exc:  # a bug: the importing side raises it
            with contextlib.suppress(_Cancelled):
                self._put(exc)

    async def next(self) -> Message:
        item = await asyncio.to_thread(self._queue.get)
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.asynccontextmanager
async def _parser(job: ParseJob, workers: int) -> AsyncIterator[_Parser]:
    parser = _ParserProcess(job) if workers > 0 else _ParserThread(job)
    try:
        yield parser
    finally:
        parser.close()


@dataclass(slots=True)
class _Figures:
    """What a run read and where its time went, for ``import_finished``."""

    read: int = 0
    loader_seconds: float = 0.0


async def _each_batch(
    parser: _Parser, errors: ErrorFile, load: Callable[[Parsed], Awaitable[None]],
    on_progress: ProgressCallback | None, figures: _Figures,
) -> Finished:
    """Hand each batch to ``load`` in file order (its rejected rows to the error file)
    until the parser says the file is done; ImportFileError when it is unusable."""
    while True:
        message = await parser.next()
        if isinstance(message, Failed):
            raise ImportFileError(message.message)
        if isinstance(message, Finished):
            return message
        errors.write(message.rejected)
        figures.read += message.read
        await load(message)
        if on_progress is not None:
            on_progress(message.position, message.size)


# ---- the do-not-call pipeline --------------------------------------------------------

MergeBatch = Callable[[list[Record]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PipelineResult:
    read: int
    rejected: int
    errors_path: Path | None
    stopped: str | None  # why the file could not be read to its end


async def run_pipeline(
    path: Path,
    merge: MergeBatch,
    *,
    phone_column: str,
    region: str,
    errors_path: Path | None,
    contacts: bool,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> PipelineResult:
    """Read ``path`` and hand each batch of good rows, in file order, to ``merge`` as
    records; bad rows go to the error file. The do-not-call import's pipeline
    (``contacts`` must be False: a contact import loads COPY lines instead)."""
    if contacts:
        raise ValueError("run_pipeline reads do-not-call files; use import_contacts")
    region = check_region(region)
    errors_path = errors_path or default_errors_path(path)
    job = ParseJob(path, errors_path, phone_column, region, batch_rows)
    errors = ErrorFile(errors_path)
    figures = _Figures()

    async def load(parsed: Parsed) -> None:
        assert isinstance(parsed.batch, list)
        if parsed.batch:
            await merge(parsed.batch)

    try:
        async with _parser(job, _workers(path, workers)) as parser:
            end = await _each_batch(parser, errors, load, on_progress, figures)
    finally:
        errors.close()
    _progress_done(path, end, on_progress)
    return PipelineResult(figures.read, errors.count, errors_path if errors.count else None,
                          end.stopped)


def _workers(path: Path, workers: int | None) -> int:
    if workers is not None:
        return workers
    try:
        return auto_workers(path.stat().st_size)
    except OSError:
        return 0  # the parser says what is wrong with the file


def _progress_done(path: Path, end: Finished, on_progress: ProgressCallback | None) -> None:
    if on_progress is not None and end.stopped is None:
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            on_progress(size, size)


# ---- contacts --------------------------------------------------------------------


class _Loader:
    """Loads the batches of one contact import into its campaign, in file order.

    ``fresh``: the campaign was empty when the import took its turn, so batches are
    COPYed straight into contacts, each on whichever connection is free (the parser
    never sends a number twice). Otherwise, and for good once a batch is not
    deduplicated against the rest of the file or a COPY meets a number stored by
    someone else, each batch is merged, one after another."""

    def __init__(self, connections: Sequence[db.Connection], campaign_id: int,
                 *, fresh: bool) -> None:
        self._campaign_id = campaign_id
        self.fresh = fresh
        self._idle: asyncio.Queue[db.Connection] = asyncio.Queue()
        for conn in connections:
            self._idle.put_nowait(conn)
        self._copies: list[asyncio.Task[None]] = []
        self.loaded = 0
        self.dnc = 0
        self.staged = 0
        self.batches = 0
        self.merged = 0

    async def load(self, parsed: Parsed) -> None:
        batch = parsed.batch
        assert isinstance(batch, ContactBatch)
        self.staged += batch.staged
        self._reap()
        if not batch.lines:
            return
        if not batch.deduplicated:
            self.fresh = False
        if not self.fresh:
            await self.drain()  # earlier rows win: a merge waits for the COPYs before it
        conn = await self._idle.get()
        try:
            lines, listed = await self._prepare(conn, batch)
        except BaseException:
            self._idle.put_nowait(conn)
            raise
        self.batches += 1
        if self.fresh:
            self._copies.append(asyncio.create_task(self._copy(conn, lines, listed)))
        else:
            try:
                await self._merge(conn, lines)
            finally:
                self._idle.put_nowait(conn)

    async def _prepare(self, conn: db.Connection, batch: ContactBatch) -> tuple[bytes, int]:
        """The batch's COPY text, with ids in file order in front and the rows of
        numbers on a do-not-call list stored as skipped; and how many those are."""
        ids = await repository.reserve_contact_ids(conn, len(batch.lines))
        listed = await repository.import_dnc_listed(conn, self._campaign_id, batch.phones)
        lines = batch.lines
        if listed:
            lines = [line[:-len(PENDING_TAIL)] + DNC_TAIL if number in listed else line
                     for number, line in zip(batch.phones, lines, strict=True)]
        return "".join(map(str.__add__, ids, lines)).encode(), len(listed)

    async def _copy(self, conn: db.Connection, lines: bytes, listed: int) -> None:
        try:
            try:
                stored = await repository.copy_contacts(conn, lines)
            except asyncpg.UniqueViolationError:
                # Someone else stored one of these numbers since the import began.
                self.fresh = False
                await self._merge(conn, lines)
            else:
                self.loaded += stored - listed
                self.dnc += listed
        finally:
            self._idle.put_nowait(conn)

    async def _merge(self, conn: db.Connection, lines: bytes) -> None:
        loaded, dnc = await repository.merge_contacts(conn, self._campaign_id, lines)
        self.loaded += loaded
        self.dnc += dnc
        self.merged += 1

    def _reap(self) -> None:
        """Forget the COPYs that are done; raise the error of one that failed."""
        done = [task for task in self._copies if task.done()]
        self._copies = [task for task in self._copies if not task.done()]
        for task in done:
            task.result()

    async def drain(self) -> None:
        """Wait for the COPYs under way; the first error is raised."""
        copies, self._copies = self._copies, []
        await asyncio.gather(*copies)

    async def abort(self) -> None:
        """Stop the COPYs under way (the import failed); each is rolled back whole."""
        for task in self._copies:
            task.cancel()
        await asyncio.gather(*self._copies, return_exceptions=True)


async def import_contacts(
    pool: asyncpg.Pool,
    campaign_id: int,
    path: Path,
    *,
    phone_column: str = "phone",
    default_region: str = "US",
    errors_path: Path | None = None,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import a contact CSV into a campaign (any state; new contacts are pending).

    The phone column is required and every other named column except ``timezone``
    is kept in the contact's ``attributes`` (for TwiML personalisation). The zones
    come from the ``timezone`` column when filled (an unknown zone rejects the row),
    else every zone of the number (none: the campaign's default zone applies); the
    states from a ``state`` column (read for +1 numbers; a US number with a value that
    is no US state is rejected) and from the number's area code. A number repeated in
    the file is loaded from its first row. Numbers on the do-not-call list are stored
    as ``skipped`` (reason ``dnc``). Safe to re-run: rows already in the campaign count
    as duplicates, except contacts skipped for their location (no zone, zones without
    a common calling time), which the new row's location puts back in the queue.
    ``ImportStopped`` (with the result so far) when the file is damaged part way.
    """
    started = time.perf_counter()
    cpu_started = time.process_time()
    region = check_region(default_region)
    errors_path = errors_path or default_errors_path(path)
    job = ParseJob(path, errors_path, phone_column, region, batch_rows, campaign_id)
    errors = ErrorFile(errors_path)
    figures = _Figures()
    try:
        async with contextlib.AsyncExitStack() as stack:
            # The parser starts first: it reads while the database is set up.
            workers = _workers(path, workers)
            parser = await stack.enter_async_context(_parser(job, workers))
            # Released connections are reset: that also lets go of the import lock.
            conns = [await stack.enter_async_context(pool.acquire())
                     for _ in range(_LOADERS)]
            await _take_turn(conns[0], campaign_id)
            fresh = not await repository.campaign_has_contacts(conns[0], campaign_id)
            for conn in conns:
                await repository.create_import_staging(conn)
            loader = _Loader(conns if fresh else conns[:1], campaign_id, fresh=fresh)
            stack.push_async_callback(loader.abort)
            end = await _each_batch(parser, errors, loader.load, on_progress, figures)
            await loader.drain()
            await repository.unlock_campaign_imports(conns[0], campaign_id)
    finally:
        errors.close()
    _progress_done(path, end, on_progress)
    result = ImportResult(
        read=figures.read,
        loaded=loader.loaded,
        duplicates=loader.staged - loader.loaded - loader.dnc,
        dnc=loader.dnc,
        rejected=errors.count,
        errors_path=errors_path if errors.count else None,
        seconds=time.perf_counter() - started,
    )
    loader_seconds = time.process_time() - cpu_started
    if workers == 0:  # the parser thread's time is this process's too
        loader_seconds -= end.read_seconds + end.parse_seconds
    _log_figures(result, end, loader_seconds, fresh=fresh, batches=loader.batches,
                 merged=loader.merged)
    if end.stopped is not None:
        raise ImportStopped(end.stopped, result)
    return result


async def _take_turn(conn: db.Connection, campaign_id: int) -> None:
    if not await repository.lock_campaign_imports(conn, campaign_id, wait=False):
        log.warning("import_waiting", campaign_id=campaign_id,
                    why="another import into this campaign is running")
        await repository.lock_campaign_imports(conn, campaign_id, wait=True)


def _log_figures(result: ImportResult, end: Finished, loader_seconds: float, *, fresh: bool,
                 batches: int, merged: int) -> None:
    rows = max(result.read, 1)
    cache = end.cache
    looked_up = cache.hits + cache.misses
    fields: dict[str, Any] = {
        "rows": result.read, "seconds": round(result.seconds, 3),
        "rows_per_second": round(result.rows_per_second),
        "read_us_per_row": round(end.read_seconds * 1e6 / rows, 2),
        "parse_us_per_row": round(end.parse_seconds * 1e6 / rows, 2),
        "loader_us_per_row": round(loader_seconds * 1e6 / rows, 2),
        "cache_hits": cache.hits, "cache_misses": cache.misses, "cache_classes": cache.classes,
        "cache_hit_rate": round(cache.hits / looked_up, 5) if looked_up else None,
        "copied_straight": fresh and merged == 0, "batches": batches, "merged_batches": merged,
    }
    log.debug("import_finished", **fields)
