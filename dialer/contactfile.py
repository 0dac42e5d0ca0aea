"""A contact or do-not-call CSV file, read in bounded memory and checked row by row.

This is the part of an import that runs in the parser process (see
``dialer.importer``), so it imports nothing that talks to the database or loads the
rule packs. Why it reads the way it does:

* **Streaming.** The file (plain or gzip, told apart by its magic bytes or a ``.gz``
  name) is read through the ``csv`` module in batches, so memory does not grow with
  the file.
* **One bad row never spoils the file.** Bytes are decoded with ``surrogateescape``:
  invalid UTF-8 survives as lone surrogates, which mark that row (and only that row)
  as bad. Rows that cannot be used (wrong column count, bad encoding, empty or
  invalid number, unknown time zone or US state, unreadable CSV, a value longer than
  ``MAX_FIELD_CHARS`` or a row longer than ``MAX_ROW_CHARS``) are never loaded; they
  are written to an error CSV (see ``ERROR_COLUMNS``) and the good rows still load.
* **Bounded memory whatever the input.** Lines are read at most ``MAX_ROW_CHARS``
  at a time; the rest of a longer line is skipped, not held (a 1 GB line in a small
  gzip file costs no more than a short one).
* **A file, not just bytes.** A file that is binary (NUL bytes, a spreadsheet, an
  archive, UTF-16) is refused whole, named but never echoed; a header with no data
  rows, or nothing at all, is an error too (``ImportFileError``). Corrupt gzip data
  is refused before anything is loaded (it can decode into wrong numbers, which
  only the checksum at the end reveals). A file that stops part way (gzip data that
  ends early, a read error) ends its batches there, and the import says so
  (``ImportStopped``).
* **Rows become COPY text.** A contact row becomes one line of COPY text for table
  ``contacts`` (``ContactLines``), built from templates: its number's answers come
  from ``phone.locate``'s exact cache, its location and its attributes' JSON from
  caches of their own. Each number goes once, in the first row that has it: the
  others are duplicates, counted but not sent, so batches never collide in the
  database. Numbers are remembered up to ``SEEN_LIMIT``; past it, a batch is marked
  as not deduplicated against the earlier ones and the loader merges it instead.

Row numbers in the error file count records the way a spreadsheet numbers rows: the
header is row 1 and the first data row is row 2 (a quoted field spanning lines is
still one row). Blank lines are skipped, keep their number, and are not counted.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import operator
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import phonenumbers

from dialer import phone
from dialer.csvtext import Lines, RowTooLong, Text
from dialer.location import check_zone, locate
from dialer.places import parse_state
from dialer.safetext import has_controls, shown
from dialer.windows import parse_until

__all__ = [
    "COPY_COLUMNS",
    "DNC_TAIL",
    "ERROR_COLUMNS",
    "EXPIRES_COLUMN",
    "MAX_FIELD_CHARS",
    "MAX_ROW_CHARS",
    "PENDING_TAIL",
    "SEEN_LIMIT",
    "STATE_COLUMN",
    "TIMEZONE_COLUMN",
    "ContactBatch",
    "ContactLines",
    "ErrorFile",
    "Failed",
    "Finished",
    "ImportFileError",
    "ImportStopped",
    "Layout",
    "ParseJob",
    "Parsed",
    "Rejected",
    "check_region",
    "default_errors_path",
    "parse_file",
    "parse_header",
    "parse_rows",
]

# A value longer than this is not a name, a note or a number: the row is rejected.
MAX_FIELD_CHARS = 2_000
# A row (a record, all its lines) longer than this is skipped unread.
MAX_ROW_CHARS = 65_536
# How much of a file's start is looked at to tell text from binary.
_SNIFF_BYTES = 4096
TIMEZONE_COLUMN = "timezone"
# A US state or territory (code or name), read for NANP numbers; kept in the
# attributes too, for personalisation.
STATE_COLUMN = "state"
# The error file: the row number (header = row 1), the column at fault (empty when
# the whole row is), why, and the row as read (re-quoted as one CSV line; bytes that
# were not UTF-8 shown as \xNN).
ERROR_COLUMNS = ("row", "field", "reason", "raw")
# A do-not-call import's optional column: when each entry stops blocking (a date or an
# ISO-8601 instant; empty: never). Stored, as ISO-8601 UTC, in the record's attributes.
EXPIRES_COLUMN = "expires"
_GZIP_MAGIC = b"\x1f\x8b"
# Numbers a contact import remembers to find duplicates in the file: about 60 bytes
# each (a Python int in a set), so 90 MB at the limit.
SEEN_LIMIT = 1_500_000

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


# A good row's number as the row gives it: E.164, the library's answers (None for a
# do-not-call file, which needs the number alone), the row's zone and US state; and
# whether its values are plain: no character that JSON or COPY text escapes.
Checked = tuple[int, list[str], str, "phone.Answer | None", "str | None", "str | None", bool]


def _checked_rows(
    layout: Layout, rows: Sequence[tuple[int, list[str]]], rejected: list[Rejected]
) -> Iterator[Checked]:
    """The rows that can be used, with what their number and cells say; the others go
    to ``rejected``, with the first problem found in the order the checks run."""
    width = layout.columns
    phone_index = layout.phone_index
    zone_index = layout.timezone_index
    state_index = layout.state_index
    region = layout.region
    for row_no, fields in rows:
        if len(fields) != width:
            rejected.append(
                Rejected(row_no, "", f"expected {width} columns, got {len(fields)}",
                         _render(fields))
            )
            continue
        joined = "".join(fields)
        if len(joined) > MAX_FIELD_CHARS and max(map(len, fields)) > MAX_FIELD_CHARS:
            column = next(i for i, value in enumerate(fields) if len(value) > MAX_FIELD_CHARS)
            rejected.append(Rejected(
                row_no, layout.names[column],
                f"value longer than {MAX_FIELD_CHARS:,} characters ({len(fields[column]):,})",
                _render(fields),
            ))
            continue
        # Printable text has no NUL, no lone surrogate and no control character.
        printable = joined.isprintable()
        if not printable and _has_bad_text(joined):
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
        answer: phone.Answer | None = None
        try:
            if layout.with_zone:
                e164, answer = phone.locate(raw, region)
            else:  # a do-not-call list needs the number alone
                e164 = phone.normalize(raw, region)
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
                if answer is not None and answer.state is not None:
                    rejected.append(Rejected(row_no, layout.names[state_index or 0], str(exc),
                                             _render(fields)))
                    continue
        yield (row_no, fields, e164, answer, zone, state,
               printable and '"' not in joined and "\\" not in joined)


def _attributes_json(layout: Layout) -> Callable[[list[str]], str]:
    """The row's other named columns as a JSON object, as ``json.dumps`` (compact,
    not ASCII-escaped) spells it, from a template: one C call per value."""
    if not layout.attributes:
        return lambda fields: "{}"
    encode = json.encoder.encode_basestring
    template = "{" + ",".join(encode(name).replace("%", "%%") + ":%s"
                              for _, name in layout.attributes) + "}"
    indexes = [i for i, _ in layout.attributes]
    if len(indexes) == 1:
        only = indexes[0]
        return lambda fields: template % encode(fields[only])
    values = operator.itemgetter(*indexes)
    return lambda fields: template % tuple(map(encode, values(fields)))


def _plain_line(layout: Layout, head: str) -> Callable[[list[str], str, str], str]:
    """``(fields, e164, place) -> COPY line`` for a row whose values JSON and COPY
    escape nothing in (no quote, backslash or control character): ``head``, the
    number, the place and the attributes' JSON as ``_attributes_json`` spells it,
    the values between the fixed pieces as they are. Written out as one f-string
    over the row's cells, generated for the layout: it costs a third of the
    template and its per-value calls (0.3 µs a row). Only cell indexes and names of
    its own go into the generated source; the text pieces are its default values."""
    encode = json.encoder.encode_basestring
    names = [name for _, name in layout.attributes]
    json_pieces = ([f"{{{encode(names[0])}:\"", *(f'",{encode(n)}:"' for n in names[1:]), '"}']
                   if names else ["{}"])
    # p0 the head, p1 the JSON up to the first value, p2... what follows each value.
    pieces = [head, *map(_copy_text, json_pieces), PENDING_TAIL]
    cells = "".join(f"{{fields[{i}]}}{{p{k}}}" for k, (i, _) in enumerate(layout.attributes, 2))
    defaults = ", ".join(f"p{k}=pieces[{k}]" for k in range(len(pieces)))
    source = (f"lambda fields, e164, place, {defaults}: "
              f"f'{{p0}}{{e164}}\\t{{place}}\\t{{p1}}{cells}{{p{len(pieces) - 1}}}'")
    line: Callable[[list[str], str, str], str] = eval(source, {"pieces": pieces})
    return line


def parse_rows(
    layout: Layout, rows: Sequence[tuple[int, list[str]]]
) -> tuple[list[Record], list[Rejected]]:
    """Check and convert a batch of rows into records (a do-not-call import keeps the
    numbers; a contact import loads ``ContactLines`` instead)."""
    records: list[Record] = []
    rejected: list[Rejected] = []
    attributes = _attributes_json(layout)
    expires_index = layout.expires_index
    for row_no, fields, e164, answer, zone, state, _ in _checked_rows(layout, rows, rejected):
        attrs = attributes(fields)
        if expires_index is not None and fields[expires_index].strip():
            try:
                expires = parse_until(fields[expires_index])
            except ValueError as exc:
                rejected.append(Rejected(row_no, layout.names[expires_index], str(exc),
                                         _render(fields)))
                continue
            attrs = json.dumps({EXPIRES_COLUMN: expires.isoformat()})
        where = locate(csv_zone=zone, number_zones=answer.zones if answer else (),
                       csv_state=state, number_state=answer.state if answer else None)
        records.append((row_no, e164, " ".join(where.zones), where.zone_source,
                        " ".join(where.states), " ".join(where.state_sources), attrs))
    return records, rejected


# ---- contact rows as COPY text ------------------------------------------------------

# The columns of a COPY line for table contacts. The loader puts the id in front (it
# reserves ids in file order); the parser writes the rest, ending in PENDING_TAIL,
# which the loader swaps for DNC_TAIL when the number is on a do-not-call list.
COPY_COLUMNS = ("id", "campaign_id", "phone", "zones", "zone_source", "states",
                "state_sources", "attributes", "state", "reason")
PENDING_TAIL = "\tpending\t\\N\n"
DNC_TAIL = "\tskipped\tdnc\n"


def _copy_text(value: str) -> str:
    """A value as a field of COPY's text format."""
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _array(items: Sequence[str]) -> str:
    """A text[] literal; an element with a character arrays treat specially is quoted."""
    def element(item: str) -> str:
        if item and item.upper() != "NULL" and not any(c in item for c in '{}," \\\t\n\r'):
            return item
        return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "{" + ",".join(map(element, items)) + "}"


@dataclass(slots=True)
class ContactBatch:
    """One batch of a contact file, ready for COPY: ``lines`` (see ``COPY_COLUMNS``)
    with their numbers in ``phones``; ``staged`` counts the batch's good rows,
    duplicates within the file included (they have no line). ``deduplicated``: no
    number of this batch has a line in another batch (false once ``SEEN_LIMIT``
    numbers have been seen)."""

    lines: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    staged: int = 0
    deduplicated: bool = True


class ContactLines:
    """The good rows of one contact file, batch by batch, as COPY text lines for
    ``campaign_id``, each number once: in the first row that has it."""

    def __init__(self, layout: Layout, campaign_id: int, *, seen_limit: int = SEEN_LIMIT) -> None:
        self._layout = layout
        self._head = f"\t{campaign_id}\t"
        self._attributes = _attributes_json(layout)
        self._plain_line = _plain_line(layout, self._head)
        self._seen: set[int] = set()
        self._seen_limit = seen_limit
        self._complete = True
        # (answer, row zone, row state) -> the location's COPY fields; a file has few.
        self._places: dict[tuple[phone.Answer | None, str | None, str | None], str] = {}

    def _place(self, answer: phone.Answer | None, zone: str | None, state: str | None) -> str:
        """The location's COPY fields, worked out and kept (``convert`` looks in
        ``_places`` first)."""
        if len(self._places) >= _ZONE_CACHE_SIZE:
            self._places.clear()
        where = locate(csv_zone=zone, number_zones=answer.zones if answer else (),
                       csv_state=state, number_state=answer.state if answer else None)
        found = "\t".join(_copy_text(part) for part in (
            _array(where.zones), where.zone_source, _array(where.states),
            _array(where.state_sources)))
        self._places[(answer, zone, state)] = found
        return found

    def convert(self, rows: Sequence[tuple[int, list[str]]]) -> tuple[ContactBatch, list[Rejected]]:
        rejected: list[Rejected] = []
        batch = ContactBatch()
        lines, phones, seen, places = batch.lines, batch.phones, self._seen, self._places
        head, attributes, plain_line = self._head, self._attributes, self._plain_line
        staged = 0
        for _, fields, e164, answer, zone, state, plain in _checked_rows(
                self._layout, rows, rejected):
            staged += 1
            number = int(e164)
            if number in seen:
                continue  # a duplicate within the file: the first row has the line
            if self._complete:
                if len(seen) < self._seen_limit:
                    seen.add(number)
                else:
                    self._complete = False
            place = places.get((answer, zone, state)) or self._place(answer, zone, state)
            if plain:
                lines.append(plain_line(fields, e164, place))
            else:
                json_text = attributes(fields)
                if "\\" in json_text:
                    json_text = json_text.replace("\\", "\\\\")
                lines.append(f"{head}{e164}\t{place}\t{json_text}{PENDING_TAIL}")
            phones.append(e164)
        batch.staged = staged
        batch.deduplicated = self._complete
        return batch, rejected


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
    """The input file's text (``csvtext.Text``), plus how far into the file we are."""

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
            # Decoded as utf-8-sig (a byte order mark dropped), bytes that are not
            # UTF-8 kept as lone surrogates.
            self.text = Text(binary, MAX_ROW_CHARS)
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


class ErrorFile:
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
    text: Text, reader: Iterator[list[str]], lines: Lines, size: int
) -> Iterator[tuple[list[tuple[int, list[str]]], list[Rejected]]]:
    """Rows numbered as records (header = 1), in batches; unreadable rows apart. Whole
    blocks of plain lines come from ``text.block``, other records one by one from
    ``reader``. When the file cannot be read further, what was read is yielded, then
    ``_Damaged``."""
    row_no = 1
    rows: list[tuple[int, list[str]]] = []
    broken: list[Rejected] = []
    while True:
        block = text.block()
        if block is not None:
            first, row_no = row_no + 1, row_no + len(block)
            numbered = zip(range(first, row_no + 1), block, strict=True)
            rows.extend(numbered if [] not in block else (r for r in numbered if r[1]))
            while len(rows) + len(broken) >= size:
                cut = size - len(broken)
                yield rows[:cut], broken
                rows, broken = rows[cut:], []
            continue
        try:
            fields = next(reader)
        except StopIteration:
            break
        except RowTooLong:
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


# ---- the parser: a whole file, batch by batch -------------------------------------


@dataclass(frozen=True, slots=True)
class ParseJob:
    """What the parser process is given: the file and how to read it. With a
    ``campaign_id`` the rows become ``ContactLines``; without, do-not-call records."""

    path: Path
    errors_path: Path
    phone_column: str
    region: str
    batch_rows: int
    campaign_id: int | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """One batch: ``ContactBatch`` or do-not-call records, the rows rejected, how many
    rows were read, and how far into the file (bytes) the reading is."""

    batch: ContactBatch | list[Record]
    rejected: list[Rejected]
    read: int
    position: int
    size: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of the file (``stopped``: why it could not be read further), with the
    parser's CPU seconds reading (CSV and decoding) and converting rows, and how the
    number cache fared."""

    stopped: str | None
    read_seconds: float
    parse_seconds: float
    cache: phone.CacheStats


@dataclass(frozen=True, slots=True)
class Failed:
    """The file cannot be imported (``ImportFileError``'s message)."""

    message: str


Message = Parsed | Finished | Failed


def parse_file(job: ParseJob, send: Callable[[Message], None]) -> None:
    """Read ``job.path`` and ``send`` each batch, then ``Finished``, or ``Failed`` as
    soon as the file turns out unusable (nothing after it). Runs in the parser process
    or thread; ``time.thread_time`` keeps its figures its own either way."""
    try:
        _parse(job, send)
    except ImportFileError as exc:
        send(Failed(str(exc)))


def _parse(job: ParseJob, send: Callable[[Message], None]) -> None:
    path = job.path
    source = _Source.open(path, job.errors_path)
    read_seconds = parse_seconds = 0.0
    reading = time.thread_time()
    try:
        lines = Lines(source.text, MAX_ROW_CHARS)
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except StopIteration:
            raise ImportFileError(f"{path} is empty: a header row is needed") from None
        except RowTooLong:
            raise ImportFileError(
                f"the header row of {path} is longer than {MAX_ROW_CHARS:,} characters: "
                "is this a CSV file?"
            ) from None
        lines.record_done()
        try:
            layout = parse_header(header, phone_column=job.phone_column, region=job.region,
                                  contacts=job.campaign_id is not None)
        except ImportFileError as exc:
            raise ImportFileError(f"{path}: {exc}") from None
        contacts = None if job.campaign_id is None else ContactLines(layout, job.campaign_id)
        read = 0
        stopped: str | None = None
        try:
            for rows, broken in _batches(source.text, reader, lines, job.batch_rows):
                converting = time.thread_time()
                read_seconds += converting - reading
                batch: ContactBatch | list[Record]
                if contacts is not None:
                    batch, rejected = contacts.convert(rows)
                else:
                    batch, rejected = parse_rows(layout, rows)
                read += len(rows) + len(broken)
                send(Parsed(batch, [*broken, *rejected], len(rows) + len(broken),
                            source.position, source.size))
                reading = time.thread_time()
                parse_seconds += reading - converting  # handing the batch over included
        except _Damaged as exc:
            stopped = exc.describe()
        read_seconds += time.thread_time() - reading
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ImportFileError(f"{path} is not a readable gzip file: {exc}") from None
    except (csv.Error, OSError) as exc:
        raise ImportFileError(f"cannot read {path}: {exc}") from None
    finally:
        source.close()
    if read == 0 and stopped is None:
        raise ImportFileError(f"{path} has a header row but no data rows: nothing to import")
    send(Finished(stopped, read_seconds, parse_seconds, phone.cache_stats()))
