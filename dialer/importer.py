"""CSV -> contacts: stream a contact file into a campaign, fast, in bounded memory.

Why it is built this way:

* **Streaming.** The file (plain or gzip, told apart by its magic bytes or a ``.gz``
  name) is read through the ``csv`` module in batches of ``BATCH_ROWS`` rows, so
  memory does not grow with the file.
* **One bad row never spoils the file.** Bytes are decoded with ``surrogateescape``:
  invalid UTF-8 survives as lone surrogates, which mark that row (and only that row)
  as bad. Rows that cannot be used (wrong column count, bad encoding, empty or
  invalid number, unknown time zone, unreadable CSV, a value longer than
  ``MAX_FIELD_CHARS`` or a row longer than ``MAX_ROW_CHARS``) are never loaded; they
  are written to an error CSV (see ``ERROR_COLUMNS``) and the good rows still load.
* **Bounded memory whatever the input.** Lines are read at most ``MAX_ROW_CHARS``
  at a time; the rest of a longer line is skipped, not held (a 1 GB line in a small
  gzip file costs no more than a short one).
* **A file, not just bytes.** A file that is binary (NUL bytes, a spreadsheet, an
  archive, UTF-16) is refused whole, named but never echoed; a header with no data
  rows, or nothing at all, is an error too (``ImportFileError``). Corrupt gzip data
  is refused before anything is loaded (it can decode into wrong numbers, which
  only the checksum at the end reveals). A file that stops part way (gzip data
  that ends early, a read error) keeps every batch loaded before the cut and
  raises ``ImportStopped``, whose ``result`` says how many; the same import run
  again once the file is whole skips what is already there.
* **COPY, then one merge per batch.** A batch is COPYed into a TEMP staging table and
  moved into ``contacts`` by one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``
  statement in the same transaction. A batch is therefore in or out, never half, and
  a re-run after an interruption (even ``kill -9``) skips what is already there and
  counts it as duplicates: the same file always ends as the same contacts.
* **Where a contact may be.** Its zones come from the ``timezone`` column, else from
  every zone of its number; its US states from the ``state`` column and from the
  number's area code (``dialer.compliance.locate``). Both are stored with their
  sources, for the calling window and for the record of each attempt.
* **Parsing beside loading.** Normalising a number with ``phonenumbers`` costs about
  20 µs and finding its zones and state as much again, which dominates everything else.
  Batches are parsed in a thread while Postgres merges the previous one, and on
  machines with three or more CPUs in a process pool (``auto_workers``). Worker
  processes are spawned, so a program calling this must guard its entry point
  with ``if __name__ == "__main__"`` (the ``dialer`` command does).

Row numbers in the error file count records the way a spreadsheet numbers rows: the
header is row 1 and the first data row is row 2 (a quoted field spanning lines is
still one row). Blank lines are skipped, keep their number, and are not counted.

Nothing here prints: results come back as ``ImportResult`` and progress goes to an
optional callback, so commands decide what the operator sees.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import asyncpg
import phonenumbers

from dialer import phone, repository
from dialer.campaigns import check_zone
from dialer.compliance import locate
from dialer.places import parse_state
from dialer.safetext import has_controls, shown
from dialer.windows import parse_until

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

BATCH_ROWS = 25_000
# A value longer than this is not a name, a note or a number: the row is rejected.
MAX_FIELD_CHARS = 2_000
# A row (a record, all its lines) longer than this is skipped unread.
MAX_ROW_CHARS = 65_536
# How much of a file's start is looked at to tell text from binary.
_SNIFF_BYTES = 4096
# Below this size a process pool costs more to start than it saves.
PARALLEL_MIN_BYTES = 8 << 20
TIMEZONE_COLUMN = "timezone"
# A US state or territory (code or name), read for NANP numbers; kept in the
# attributes too, for personalisation.
STATE_COLUMN = "state"
# A do-not-call import's optional column: when each entry stops blocking (a date or an
# ISO-8601 instant; empty: never). Stored, as ISO-8601 UTC, in the record's attributes.
EXPIRES_COLUMN = "expires"
# The error file: the row number (header = row 1), the column at fault (empty when
# the whole row is), why, and the row as read (re-quoted as one CSV line; bytes that
# were not UTF-8 shown as \xNN).
ERROR_COLUMNS = ("row", "field", "reason", "raw")
_GZIP_MAGIC = b"\x1f\x8b"

ProgressCallback = Callable[[int, int], None]
# What a good row becomes: (row number, E.164, zones, zone source, states, state
# sources, attributes as JSON); the lists space-separated, as the staging table has them.
Record = tuple[int, str, str, str, str, str, str]


class ImportFileError(Exception):
    """The file as a whole cannot be imported (no header, no data rows, no phone
    column, binary, not gzip although named .gz ...); the message says which and why."""


class ImportStopped(ImportFileError):
    """The file stopped being readable part way (truncated or corrupt gzip data, a
    read error). Every row before the damage was handled and stays loaded;
    ``result`` (an ``ImportResult`` or ``DncImportResult``) counts them."""

    def __init__(self, problem: str, result: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.result = result


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that was not loaded, as written to the error file."""

    row: int
    field: str
    reason: str
    raw: str


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


@dataclass(frozen=True, slots=True)
class Layout:
    """How to read the rows of one file, derived from its header.

    ``timezone_index``, ``state_index`` and ``attributes`` are only filled for
    contact imports; a do-not-call import needs the number and ``expires_index``.
    """

    names: tuple[str, ...]
    phone_index: int
    timezone_index: int | None
    attributes: tuple[tuple[int, str], ...]
    region: str
    with_zone: bool
    state_index: int | None = None
    expires_index: int | None = None

    @property
    def columns(self) -> int:
        return len(self.names)

    @property
    def phone_name(self) -> str:
        return self.names[self.phone_index]


def check_region(region: str) -> str:
    """The region in upper case, or ValueError: a typo here would reject every row."""
    code = region.strip().upper()
    if code != "ZZ" and code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown region {region!r}: use an ISO 3166 code such as US or GB")
    return code


def default_errors_path(path: Path) -> Path:
    """``contacts.csv`` and ``contacts.csv.gz`` -> ``contacts.errors.csv`` beside them."""
    name = path.name
    for suffix in (".gz", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return path.with_name(f"{name}.errors.csv")


def parse_header(
    fields: Sequence[str], *, phone_column: str, region: str, contacts: bool = True
) -> Layout:
    """The layout of a file from its header row (ImportFileError if unusable).

    Column names are compared without surrounding blanks and, failing an exact match,
    without regard to case. Columns with an empty name (a trailing comma) are kept
    for the column count and otherwise ignored.
    """
    names = tuple(name.strip() for name in fields)
    if not any(names):
        raise ImportFileError("the header row is empty")
    if any(_has_bad_text(name) for name in names):
        raise ImportFileError(
            "the header row is not valid UTF-8 text (save the file as UTF-8 CSV)"
        )
    if any(has_controls(name) for name in names):
        raise ImportFileError("the header row holds control characters: is this a CSV file?")
    long = next((name for name in names if len(name) > MAX_FIELD_CHARS), None)
    if long is not None:
        raise ImportFileError(f"a column name in the header is {len(long):,} characters long")
    seen: set[str] = set()
    for name in names:
        if name and name.lower() in seen:
            raise ImportFileError(f"column {shown(name)} appears twice in the header")
        seen.add(name.lower())
    phone_index = _find(names, phone_column)
    if phone_index is None:
        raise ImportFileError(
            f"no column {shown(phone_column)} in the header (columns: "
            f"{shown(', '.join(names), 200, quoted=False)}); "
            "name the phone column with --phone-column"
        )
    zone_index = _find(names, TIMEZONE_COLUMN) if contacts else None
    state_index = _find(names, STATE_COLUMN) if contacts else None
    skip = {phone_index, zone_index}
    attributes = tuple(
        (i, name) for i, name in enumerate(names) if contacts and name and i not in skip
    )
    return Layout(names, phone_index, zone_index, attributes, region, with_zone=contacts,
                  state_index=state_index,
                  expires_index=None if contacts else _find(names, EXPIRES_COLUMN))


def _find(names: Sequence[str], wanted: str) -> int | None:
    wanted = wanted.strip()
    if wanted in names:
        return names.index(wanted)
    lowered = [name.lower() for name in names]
    return lowered.index(wanted.lower()) if wanted.lower() in lowered else None


def _has_bad_text(text: str) -> bool:
    """Lone surrogates (bytes that were not UTF-8) or NUL, which Postgres refuses."""
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _render(fields: Sequence[str]) -> str:
    """A row as one CSV line for the error file, undecodable bytes as \\xNN."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    text = out.getvalue().replace("\x00", "\\x00")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# Zones seen by this process: a file has few distinct ones, ZoneInfo lookups are slow.
_zone_cache: dict[str, str | None] = {}
_ZONE_CACHE_SIZE = 10_000  # a file of junk zones must not grow it without bound


def _zone_error(zone: str) -> str | None:
    """Why ``zone`` is not a usable IANA zone, or None when it is."""
    if zone not in _zone_cache:
        if len(_zone_cache) >= _ZONE_CACHE_SIZE:
            _zone_cache.clear()
        try:
            check_zone(zone)
            _zone_cache[zone] = None
        except ValueError as exc:
            _zone_cache[zone] = str(exc)
    return _zone_cache[zone]


def parse_rows(
    layout: Layout, rows: Sequence[tuple[int, list[str]]]
) -> tuple[list[Record], list[Rejected]]:
    """Check and convert a batch of rows; pure, so it can run in a worker process."""
    records: list[Record] = []
    rejected: list[Rejected] = []
    width = layout.columns
    phone_index = layout.phone_index
    zone_index = layout.timezone_index
    state_index = layout.state_index
    expires_index = layout.expires_index
    attributes = layout.attributes
    region = layout.region
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for row_no, fields in rows:
        if len(fields) != width:
            rejected.append(
                Rejected(row_no, "", f"expected {width} columns, got {len(fields)}",
                         _render(fields))
            )
            continue
        if max(map(len, fields)) > MAX_FIELD_CHARS:
            column = next(i for i, value in enumerate(fields) if len(value) > MAX_FIELD_CHARS)
            rejected.append(Rejected(
                row_no, layout.names[column],
                f"value longer than {MAX_FIELD_CHARS:,} characters ({len(fields[column]):,})",
                _render(fields),
            ))
            continue
        if _has_bad_text("".join(fields)):
            column = next(i for i, value in enumerate(fields) if _has_bad_text(value))
            what = "NUL character" if "\x00" in fields[column] else "invalid UTF-8"
            rejected.append(Rejected(row_no, layout.names[column], what, _render(fields)))
            continue
        raw = fields[phone_index]
        if not raw.strip():
            rejected.append(
                Rejected(row_no, layout.phone_name, "empty phone number", _render(fields))
            )
            continue
        try:
            if layout.with_zone:
                e164, number_zones, number_state = phone.normalize_with_location(raw, region)
            else:  # a do-not-call list needs the number alone
                e164, number_zones, number_state = phone.normalize(raw, region), frozenset(), None
        except phone.InvalidNumber as exc:
            rejected.append(
                Rejected(row_no, layout.phone_name, f"invalid number: {exc}", _render(fields))
            )
            continue
        zone: str | None = None
        if zone_index is not None:
            zone = fields[zone_index].strip() or None
        if zone is not None:
            problem = _zone_error(zone)
            if problem is not None:
                rejected.append(
                    Rejected(row_no, layout.names[zone_index or 0], problem, _render(fields))
                )
                continue
        state: str | None = None
        cell = fields[state_index].strip() if state_index is not None else ""
        if cell and e164.startswith("+1"):
            try:
                state = parse_state(cell)
            except ValueError as exc:
                # A Canadian or Caribbean number's province or parish is no US state.
                if number_state is not None:
                    rejected.append(Rejected(row_no, layout.names[state_index or 0], str(exc),
                                             _render(fields)))
                    continue
        where = locate(csv_zone=zone, number_zones=number_zones, csv_state=state,
                       number_state=number_state)
        attrs = dumps({name: fields[i] for i, name in attributes}) if attributes else "{}"
        if expires_index is not None and fields[expires_index].strip():
            try:
                expires = parse_until(fields[expires_index])
            except ValueError as exc:
                rejected.append(Rejected(row_no, layout.names[expires_index], str(exc),
                                         _render(fields)))
                continue
            attrs = dumps({EXPIRES_COLUMN: expires.isoformat()})
        records.append((row_no, e164, " ".join(where.zones), where.zone_source,
                        " ".join(where.states), " ".join(where.state_sources), attrs))
    return records, rejected


# Files people export by mistake instead of CSV, known by their first bytes.
_NOT_CSV = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?): export the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "an Excel .xls or other OLE file: export the sheet as CSV"),
    (b"%PDF", "a PDF document"),
    (b"BZh", "bzip2-compressed: only gzip compression is read"),
    (b"\xfd7zXZ\x00", "xz-compressed: only gzip compression is read"),
    (b"(\xb5/\xfd", "zstd-compressed: only gzip compression is read"),
    (b"\xff\xfe", "UTF-16 text: save it as UTF-8"),
    (b"\xfe\xff", "UTF-16 text: save it as UTF-8"),
)


def _binary_kind(sample: bytes) -> str | None:
    """What the start of a file says it is when that is not CSV text, else None.

    A few bad bytes make bad rows (rejected one by one); a start where more than one
    character in ten is a NUL, a control character or not UTF-8 is not text."""
    for magic, what in _NOT_CSV:
        if sample.startswith(magic):
            return what
    text = sample.decode("utf-8", errors="replace")
    odd = sum(1 for char in text if char == "\ufffd" or (char < " " and char not in "\t\r\n"))
    if odd > len(text) // 10:
        return "binary data, or text in an encoding other than UTF-8"
    return None


def _check_gzip(path: Path) -> None:
    """Refuse gzip data that is corrupt anywhere, before any row is loaded.

    Damaged deflate data can still decode, into wrong bytes, and only the checksum at
    the end of the member tells: rows loaded before it could hold wrong numbers. So
    the file is read through once (a chunk at a time, nothing kept), which costs a
    fraction of the import. A file that merely ends early is not refused here: every
    byte before the cut is right, so the import loads those rows and says so."""
    with gzip.open(path, "rb") as data:
        try:
            while data.read(1 << 20):
                pass
        except EOFError:
            return
        except (zlib.error, gzip.BadGzipFile) as exc:
            if "Not a gzipped file" in str(exc):
                raise
            raise ImportFileError(
                f"{path}: the gzip data is corrupt ({exc}): nothing was imported; "
                "get an undamaged copy of the file"
            ) from None


class _Source:
    """The input file as a text stream, plus how far into the file we are."""

    def __init__(self, path: Path) -> None:
        self.size = path.stat().st_size
        with ExitStack() as stack:
            self._raw = stack.enter_context(open(path, "rb"))
            binary: io.BufferedReader | gzip.GzipFile = self._raw
            if self._raw.peek(2)[:2] == _GZIP_MAGIC or path.name.lower().endswith(".gz"):
                _check_gzip(path)
                binary = gzip.GzipFile(fileobj=self._raw, mode="rb")
                stack.callback(binary.close)
            kind = _binary_kind(binary.peek(_SNIFF_BYTES)[:_SNIFF_BYTES])
            if kind is not None:
                raise ImportFileError(f"{path} is not a CSV text file: it looks like {kind}")
            # utf-8-sig drops a byte order mark; newline="" is what the csv module wants.
            self.text: TextIO = stack.enter_context(
                io.TextIOWrapper(
                    binary, encoding="utf-8-sig", errors="surrogateescape", newline=""
                )
            )
            self._stack = stack.pop_all()  # opened fully: close() owns them from here

    @classmethod
    def open(cls, path: Path, errors_path: Path) -> _Source:
        if errors_path.resolve() == path.resolve():
            raise ImportFileError("the error file cannot be the input file")
        try:
            return cls(path)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ImportFileError(f"{path} is not a readable gzip file: {exc}") from None
        except OSError as exc:
            raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None

    @property
    def position(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._stack.close()


class _RowTooLong(Exception):
    """A record longer than ``MAX_ROW_CHARS``; the rest of its line was skipped."""


class _Lines:
    """The text as lines for ``csv.reader``, no record longer than ``limit``.

    A longer line is read no further than the limit: the rest is skipped a chunk at
    a time and ``_RowTooLong`` raised, which the reader passes on; the next record
    starts afresh on the following line (``csv.reader`` resets its state for every
    record). ``record_done`` is called after each record, so that a record of many
    short lines (quoted line breaks) is held to the same limit."""

    def __init__(self, text: TextIO, limit: int = MAX_ROW_CHARS) -> None:
        self._text = text
        self._limit = limit
        self._record = 0  # characters of the record being read

    def __iter__(self) -> _Lines:
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
            raise _RowTooLong
        return line

    def record_done(self) -> None:
        self._record = 0


class _ErrorFile:
    """The error CSV, created at the first rejected row (no bad rows: no file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: TextIO | None = None
        self._writer: Any = None

    def write(self, rows: Sequence[Rejected]) -> None:
        if not rows:
            return
        try:
            if self._writer is None:
                self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
                self._writer = csv.writer(self._file)
                self._writer.writerow(ERROR_COLUMNS)
            for r in sorted(rows, key=lambda r: r.row):
                self._writer.writerow((r.row, r.field, r.reason, r.raw))
        except OSError as exc:
            raise ImportFileError(
                f"cannot write the error file {self.path}: {exc.strerror or exc}"
            ) from None
        self.count += len(rows)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# What reading the file can fail with part way: damaged gzip data, a read error.
_READ_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, OSError)


class _Damaged(Exception):
    """The file could not be read past ``row``; what came before was yielded."""

    def __init__(self, row: int, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.row = row
        self.exc = exc

    def describe(self) -> str:
        at = f"at row {self.row:,}"
        exc = self.exc
        if isinstance(exc, EOFError):
            return f"the gzip data ends early {at} (is the file truncated?)"
        if isinstance(exc, gzip.BadGzipFile) and "CRC" in str(exc):
            # The checksum comes at the end: the damage is somewhere before it.
            return (f"the gzip checksum does not match the data {at}: values of the rows "
                    "before it may be damaged too")
        if isinstance(exc, zlib.error | gzip.BadGzipFile):
            return f"the gzip data is corrupt {at} ({exc})"
        if isinstance(exc, OSError):
            return f"reading failed {at} ({exc.strerror or exc})"
        return f"{exc} {at}"


def _batches(
    reader: Iterator[list[str]], lines: _Lines, size: int
) -> Iterator[tuple[list[tuple[int, list[str]]], list[Rejected]]]:
    """Rows numbered as records (header = 1), in batches; unreadable rows apart. When
    the file cannot be read further, what was read is yielded, then ``_Damaged``."""
    row_no = 1
    rows: list[tuple[int, list[str]]] = []
    broken: list[Rejected] = []
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except _RowTooLong:
            row_no += 1
            broken.append(Rejected(
                row_no, "", f"row longer than {MAX_ROW_CHARS:,} characters: skipped unread", ""
            ))
            fields = []
        except csv.Error as exc:
            row_no += 1
            broken.append(Rejected(row_no, "", f"unreadable CSV: {exc}", ""))
            fields = []
        except _READ_ERRORS as exc:
            yield rows, broken
            raise _Damaged(row_no + 1, exc) from exc
        else:
            row_no += 1
        lines.record_done()
        if fields:  # not a blank line
            rows.append((row_no, fields))
        if len(rows) + len(broken) >= size:
            yield rows, broken
            rows, broken = [], []
    if rows or broken:
        yield rows, broken


def _die_with_parent() -> None:
    """Worker start-up: exit when the importing process dies, even by ``kill -9``.

    A pool worker blocked on its task queue never sees the parent go (it holds the
    queue's write end itself), so without this a killed import leaves its workers."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="dialer-import-watch-parent", daemon=True).start()


def auto_workers(size: int) -> int:
    """Parser processes for a file of ``size`` bytes: one per CPU but one (left to
    Postgres and the reading process) on machines with three or more CPUs, none for
    small files. On two CPUs a pool was measured to gain nothing (Postgres needs one)
    while doubling the memory used."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus - 1 if cpus >= 3 and size >= PARALLEL_MIN_BYTES else 0


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
    """Read ``path``, parse its rows (in worker processes for big files) and hand
    each batch of good rows, in file order, to ``merge``; bad rows go to the error
    file. Shared by contact and do-not-call imports.

    ``workers`` is the number of parser processes; None picks ``auto_workers``; 0
    parses in a thread of this process, which still overlaps parsing with the
    database's work on the previous batch (that runs in Postgres, not here).
    """
    region = check_region(region)
    errors_path = errors_path or default_errors_path(path)
    source = _Source.open(path, errors_path)
    errors = _ErrorFile(errors_path)
    if workers is None:
        workers = auto_workers(source.size)
    executor: Executor
    if workers > 0:
        # spawn, not fork: the parent runs an event loop and holds database sockets.
        executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent
        )
    else:
        executor = ThreadPoolExecutor(1, thread_name_prefix="dialer-import-parse")
    # One batch waiting per parser, so none idles while a batch is merged.
    ahead = max(workers, 1) + 1
    loop = asyncio.get_running_loop()
    read = 0
    # Batches being parsed, oldest first; bounded so memory stays flat.
    in_flight: deque[tuple[asyncio.Future[tuple[list[Record], list[Rejected]]], list[Rejected]]]
    in_flight = deque()

    async def finish_oldest() -> None:
        future, broken = in_flight.popleft()
        records, rejected = await future
        errors.write([*broken, *rejected])
        if records:
            await merge(records)

    stopped: str | None = None
    try:
        lines = _Lines(source.text)
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFileError(f"{path} is empty: a header row is needed") from None
        except _RowTooLong:
            raise ImportFileError(
                f"the header row of {path} is longer than {MAX_ROW_CHARS:,} characters: "
                "is this a CSV file?"
            ) from None
        lines.record_done()
        try:
            layout = parse_header(
                header, phone_column=phone_column, region=region, contacts=contacts
            )
        except ImportFileError as exc:
            raise ImportFileError(f"{path}: {exc}") from None
        try:
            for rows, broken in _batches(reader, lines, batch_rows):
                read += len(rows) + len(broken)
                in_flight.append(
                    (loop.run_in_executor(executor, parse_rows, layout, rows), broken)
                )
                while len(in_flight) > ahead:
                    await finish_oldest()
                if on_progress is not None:
                    on_progress(source.position, source.size)
        except _Damaged as exc:
            stopped = exc.describe()
        while in_flight:
            await finish_oldest()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ImportFileError(f"{path} is not a readable gzip file: {exc}") from None
    except (csv.Error, OSError) as exc:
        raise ImportFileError(f"cannot read {path}: {exc}") from None
    finally:
        for future, _ in in_flight:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        source.close()
        errors.close()
    if read == 0 and stopped is None:
        raise ImportFileError(f"{path} has a header row but no data rows: nothing to import")
    if on_progress is not None and stopped is None:
        on_progress(source.size, source.size)
    return PipelineResult(read, errors.count, errors_path if errors.count else None, stopped)


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
    is no US state is rejected) and from the number's area code. Numbers on the
    do-not-call list are stored as ``skipped`` (reason ``dnc``). Safe to re-run: rows
    already in the campaign count as duplicates, except contacts skipped for their
    location (no zone, zones without a common calling time), which the new row's
    location puts back in the queue.
    ``ImportStopped`` (with the result so far) when the file is damaged part way.
    """
    started = time.perf_counter()
    loaded = dnc = staged = 0
    async with pool.acquire() as conn:
        await repository.create_import_staging(conn)

        async def merge(records: list[Record]) -> None:
            nonlocal loaded, dnc, staged
            batch_loaded, batch_dnc = await repository.merge_import_batch(
                conn, campaign_id, records
            )
            loaded += batch_loaded
            dnc += batch_dnc
            staged += len(records)

        outcome = await run_pipeline(
            path,
            merge,
            phone_column=phone_column,
            region=default_region,
            errors_path=errors_path,
            contacts=True,
            batch_rows=batch_rows,
            workers=workers,
            on_progress=on_progress,
        )
    result = ImportResult(
        read=outcome.read,
        loaded=loaded,
        duplicates=staged - loaded - dnc,
        dnc=dnc,
        rejected=outcome.rejected,
        errors_path=outcome.errors_path,
        seconds=time.perf_counter() - started,
    )
    if outcome.stopped is not None:
        raise ImportStopped(outcome.stopped, result)
    return result
