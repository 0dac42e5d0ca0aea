"""Which numbers get the same answers from phonenumbers, proven from its own metadata.

An import asks the library about millions of numbers, and a number costs it about
40 µs: most of that is matching the digits against its country's patterns. Yet the
answers the dialer needs (valid or not, the type, the zones, the US state) depend on
the country code and the national significant number only through a few lookups, so
numbers that agree on all of them get the same answers. For one number, this module
finds the shortest prefix of its national number that decides every such lookup for
all national numbers of the same length (``Country.key_length``); ``dialer.phone``
then keeps one answer for all of them. Nothing is guessed; what the library consults
is, by its code (``phonenumberutil`` and ``timezone`` of the version range pinned in
pyproject.toml) and the dialer's own state table:

* which region of a shared country code the number is in: each region's leading
  digits (a prefix match), else whether the number is valid for the region;
* its type, and so its validity: for each type in ``TYPE_DESCS``, the type's possible
  lengths and a full match of its pattern (``_number_type_helper``);
* its zones, for a geographical type: the value of the longest prefix of the E.164
  digits in the zone map (other types take the country's zones);
* the US state, for a number of region US: the state of the longest prefix in
  ``dialer.us_state_prefixes``' table (derived from the geocoder's place names).

Each pattern becomes an automaton over the digits (``Pattern``): a prefix decides it,
at a length, when every continuation matches or none does. A prefix decides a map
lookup when every longer key below it that a number of that length could reach gives
the same value as the prefix itself (``PrefixMap``). A pattern written in syntax the
automaton does not model raises ``Unprovable``: numbers of that country then always
take the library's own path. ``tests/test_phonekeys.py`` checks these claims against
the library, so a metadata update that broke one would fail there first.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable, Sequence
from re import _parser  # type: ignore[attr-defined]  # the stdlib's own regex parser
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from dialer import us_state_prefixes

__all__ = [
    "TYPE_DESCS",
    "Country",
    "Pattern",
    "PrefixMap",
    "Unprovable",
    "country",
    "place_states",
    "zone_map",
]

DIGITS = "0123456789"
# The number descriptions _number_type_helper matches, in its order.
TYPE_DESCS = ("general_desc", "premium_rate", "toll_free", "shared_cost", "voip",
              "personal_number", "pager", "uan", "voicemail", "fixed_line", "mobile")
_NON_GEO = phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY

State = frozenset[int]


class Unprovable(Exception):
    """A pattern uses syntax the automaton does not model: nothing about it is claimed."""


def _code(name: str) -> Any:
    return getattr(_parser, name)


_LITERAL, _NOT_LITERAL, _IN, _ANY, _BRANCH, _SUBPATTERN = (
    _code(n) for n in ("LITERAL", "NOT_LITERAL", "IN", "ANY", "BRANCH", "SUBPATTERN"))
_REPEATS = (_code("MAX_REPEAT"), _code("MIN_REPEAT"))
_RANGE, _CATEGORY, _NEGATE = _code("RANGE"), _code("CATEGORY"), _code("NEGATE")
_CATEGORY_DIGIT, _CATEGORY_NOT_DIGIT = _code("CATEGORY_DIGIT"), _code("CATEGORY_NOT_DIGIT")
_MAXREPEAT = _code("MAXREPEAT")


def _char_class(items: Sequence[tuple[Any, Any]]) -> str:
    """The digits a [...] class matches (the input holds ASCII digits only)."""
    chosen: set[str] = set()
    negate = False
    for op, arg in items:
        if op is _LITERAL:
            chosen.update(d for d in DIGITS if ord(d) == arg)
        elif op is _RANGE:
            chosen.update(d for d in DIGITS if arg[0] <= ord(d) <= arg[1])
        elif op is _CATEGORY and arg is _CATEGORY_DIGIT:
            chosen.update(DIGITS)
        elif op is _CATEGORY and arg is _CATEGORY_NOT_DIGIT:
            pass  # no ASCII digit is a non-digit
        elif op is _NEGATE:
            negate = True
        else:
            raise Unprovable(f"character class item {op} {arg}")
    return "".join(d for d in DIGITS if (d in chosen) != negate)


class Pattern:
    """One of the library's regular expressions as an automaton over the digits.

    ``Pattern(p)`` accepts what ``re.fullmatch(p, digits)`` matches; with
    ``prefix=True``, what ``re.match(p, digits)`` matches (some prefix is in the
    language: a regex without anchors or lookarounds finds a match when one exists).
    States are sets of automaton nodes; ``verdict`` says whether a state decides the
    match for every continuation of a given length."""

    def __init__(self, pattern: str, *, prefix: bool = False) -> None:
        self._eps: list[list[int]] = []
        self._moves: list[list[tuple[str, int]]] = []
        start = self._node()
        try:
            tree = _parser.parse(pattern)
        except Exception as exc:  # re.error: the library could not use it either
            raise Unprovable(f"{pattern!r}: {exc}") from None
        end = self._build(tree, start)
        if prefix:  # anything may follow the match
            self._moves[end].append((DIGITS, end))
        self._accept = end
        self.start = self._closure({start})
        self._steps: dict[tuple[State, str], State] = {}
        self._reachable: dict[tuple[State, int], bool] = {}
        self._escapable: dict[tuple[State, int], bool] = {}

    def _node(self) -> int:
        self._eps.append([])
        self._moves.append([])
        return len(self._eps) - 1

    def _move(self, start: int, digits: str) -> int:
        end = self._node()
        if digits:
            self._moves[start].append((digits, end))
        return end

    def _build(self, items: Iterable[tuple[Any, Any]], start: int) -> int:
        """Thompson's construction: the node reached after ``items`` from ``start``."""
        for op, arg in items:
            if op is _LITERAL:
                start = self._move(start, chr(arg) if chr(arg) in DIGITS else "")
            elif op is _NOT_LITERAL:
                start = self._move(start, DIGITS.replace(chr(arg), ""))
            elif op is _IN:
                start = self._move(start, _char_class(arg))
            elif op is _ANY:
                start = self._move(start, DIGITS)
            elif op is _BRANCH:
                end = self._node()
                for alternative in arg[1]:
                    self._eps[self._build(alternative, start)].append(end)
                start = end
            elif op is _SUBPATTERN:
                _, add_flags, del_flags, body = arg
                if add_flags or del_flags:
                    raise Unprovable(f"inline flags {add_flags} {del_flags}")
                start = self._build(body, start)
            elif op in _REPEATS:  # greedy or lazy: the same language
                low, high, body = arg
                for _ in range(low):
                    start = self._build(body, start)
                if high is _MAXREPEAT:
                    loop = self._node()
                    self._eps[start].append(loop)
                    self._eps[self._build(body, loop)].append(loop)
                    start = loop
                else:
                    for _ in range(high - low):
                        end = self._node()
                        self._eps[start].append(end)
                        self._eps[self._build(body, start)].append(end)
                        start = end
            else:
                raise Unprovable(f"regex construct {op}")
        return start

    def _closure(self, nodes: Iterable[int]) -> State:
        seen = set(nodes)
        stack = list(seen)
        while stack:
            for target in self._eps[stack.pop()]:
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return frozenset(seen)

    def step(self, state: State, digit: str) -> State:
        key = (state, digit)
        found = self._steps.get(key)
        if found is None:
            found = self._closure(t for node in state for digits, t in self._moves[node]
                                  if digit in digits)
            self._steps[key] = found
        return found

    def accepts(self, state: State) -> bool:
        return self._accept in state

    def _can_match(self, state: State, remaining: int) -> bool:
        """Whether some continuation of ``remaining`` digits matches."""
        key = (state, remaining)
        found = self._reachable.get(key)
        if found is None:
            layer = state
            for _ in range(remaining):
                layer = self._closure(t for node in layer for _, t in self._moves[node])
                if not layer:
                    break
            found = self.accepts(layer)
            self._reachable[key] = found
        return found

    def _can_fail(self, state: State, remaining: int) -> bool:
        """Whether some continuation of ``remaining`` digits does not match."""
        if remaining == 0:
            return not self.accepts(state)
        if not state:
            return True
        key = (state, remaining)
        found = self._escapable.get(key)
        if found is None:
            found = any(self._can_fail(self.step(state, d), remaining - 1) for d in DIGITS)
            self._escapable[key] = found
        return found

    def verdict(self, state: State, remaining: int) -> bool | None:
        """True when every continuation of ``remaining`` digits matches, False when
        none does, None when it depends on them."""
        if not self._can_match(state, remaining):
            return False
        if not self._can_fail(state, remaining):
            return True
        return None


@functools.cache
def _pattern(text: str, prefix: bool) -> Pattern:
    """One automaton per distinct pattern: regions share many, and their memos."""
    return Pattern(text, prefix=prefix)


class PrefixMap:
    """A map the library reads by the longest prefix of a number's E.164 digits (no
    longer than ``longest``), reduced to what the dialer takes from each value.

    ``decided(prefix, length)``: every number of ``length`` digits starting with
    ``prefix`` gets what ``prefix`` itself gets, because no longer key below it, short
    enough to be reached, gives anything else."""

    def __init__(self, values: Iterable[tuple[str, Hashable]], longest: int) -> None:
        self._values = dict(values)
        self._longest = longest
        # For each proper prefix of a key: each value of the keys below it, with the
        # length of the shortest key giving it.
        self._below: dict[str, dict[Hashable, int]] = {}
        for key, value in self._values.items():
            for size in range(1, len(key)):
                below = self._below.setdefault(key[:size], {})
                if below.get(value, len(key) + 1) > len(key):
                    below[value] = len(key)

    def value(self, digits: str) -> Hashable | None:
        """What the longest key that starts ``digits`` gives; None for no key."""
        for size in range(min(self._longest, len(digits)), 0, -1):
            found = self._values.get(digits[:size])
            if found is not None:
                return found
        return None

    def decided(self, prefix: str, length: int) -> bool:
        below = self._below.get(prefix)
        if not below:
            return True
        here = self.value(prefix)
        reach = min(length, self._longest)
        return all(shortest > reach for value, shortest in below.items() if value != here)


@functools.cache
def zone_map() -> PrefixMap:
    """The library's zone map (``timezone.time_zones_for_geographical_number``)."""
    return PrefixMap(TIMEZONE_DATA.items(), TIMEZONE_LONGEST_PREFIX)


@functools.cache
def place_states() -> PrefixMap:
    """The US states of NANP prefixes, as ``dialer.us_state_prefixes`` looks them up
    (the longest prefix in its table, derived from the geocoder's place names; none
    gives ``US``). Its keys have no length limit, so the longest bounds the lookup."""
    table = us_state_prefixes.table()
    return PrefixMap(table.items(), max(map(len, table)))


class Country:
    """What decides the library's answers for the numbers of one country code."""

    def __init__(self, country_code: int) -> None:
        self.code = str(country_code)
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
        if not regions:
            raise Unprovable(f"no region for +{country_code}")
        rules: dict[tuple[frozenset[int] | None, str, bool], None] = {}
        for region in regions:
            if region == _NON_GEO:
                if len(regions) > 1:  # the library would pass it over: not modelled
                    raise Unprovable(f"+{country_code} mixes a non-geographic entity")
                metadata = PhoneMetadata.metadata_for_nongeo_region(country_code)
            else:
                metadata = PhoneMetadata.metadata_for_region(region)
            if metadata is None:
                raise Unprovable(f"no metadata for {region}")
            if len(regions) > 1 and metadata.leading_digits:
                rules[(None, metadata.leading_digits, True)] = None
            for name in TYPE_DESCS:
                desc = getattr(metadata, name)
                if desc is None or not desc.national_number_pattern:
                    continue  # never matches: the same for every number
                lengths = frozenset(desc.possible_length) or None
                rules[(lengths, desc.national_number_pattern, False)] = None
        self._rules: list[tuple[frozenset[int] | None, Pattern]] = [
            (lengths, _pattern(text, prefix)) for lengths, text, prefix in rules]
        self._by_length: dict[int, list[Pattern]] = {}

    def _patterns(self, length: int) -> list[Pattern]:
        """The patterns the library matches a national number of ``length`` against
        (a type whose possible lengths exclude it is skipped whatever the digits)."""
        found = self._by_length.get(length)
        if found is None:
            found = [p for lengths, p in self._rules if lengths is None or length in lengths]
            self._by_length[length] = found
        return found

    def key_length(self, national: str, *, geographical: bool, us_region: bool) -> int:
        """The length of the shortest prefix of ``national`` that decides every answer
        for all national numbers of its length. ``geographical`` and ``us_region``
        are the library's answers for this number (the type's zones come from the
        zone map; the state from the place names): a prefix that decides the patterns
        decides them for all the others too, so the maps matter only when they do."""
        length = len(national)
        patterns = self._patterns(length)
        states = [p.start for p in patterns]
        maps: list[PrefixMap] = []
        if geographical:
            maps.append(zone_map())
        if us_region:
            maps.append(place_states())
        total = len(self.code) + length
        for size in range(length + 1):
            remaining = length - size
            if (all(p.verdict(s, remaining) is not None for p, s in zip(patterns, states,
                                                                        strict=True))
                    and all(m.decided(self.code + national[:size], total) for m in maps)):
                return size
            if size < length:
                digit = national[size]
                states = [p.step(s, digit) for p, s in zip(patterns, states, strict=True)]
        raise AssertionError("a whole number decides everything")  # pragma: no cover


@functools.cache
def country(country_code: int) -> Country | None:
    """The rules of one country code, or None when they cannot be proven."""
    try:
        return Country(country_code)
    except Unprovable:
        return None
