"""How a campaign will go before it starts: a replay of the dispatcher on the list, with
no call placed.

The replay uses the daemon's own rules: send slots spaced as the pacer spaces them
(``pacer.slot_spacing``), the oldest due contact first, the calling-time planner for
every place a contact may be (``compliance.Planner``: windows, rule packs, blackouts,
start and end), the campaign's concurrency limit, and ``policy.decide`` for what each
ended call leads to (done, failed, or a retry after the policy's delay, moved into the
window). What it cannot know is how each call ends and how long it lasts: that is the
stated ``Mix`` and ``CallTimes``, drawn with a seeded generator so that a forecast is
reproducible. The replay is pure; ``for_campaign`` reads what it needs first.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import heapq
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from dialer import repository
from dialer.campaigns import Campaign
from dialer.compliance import Defer, Location, Planner, Skip, Take
from dialer.pacer import slot_spacing
from dialer.policy import AmdMode, CampaignPolicy, Done, Fail, decide

# A forecast that has not finished within this span says so rather than run on.
MAX_SPAN = dt.timedelta(days=366)
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Mix:
    """How calls end, as shares of all calls placed; what the shares leave is canceled.

    The defaults are the simulator's weighted scenario (``dialer sim --scenario
    weighted``: 55 % human, 17 % machines, 2 % AMD unsure, counted as human as the
    campaign default does, 1 % fax, 8 % busy, 12 % no answer, 4 % failed, a third of
    them for good as SIP 404 is among 404/480/503, 1 % canceled): a plausible list,
    not a measured one. Give your own from a past campaign's report."""

    human: float = 0.57
    machine: float = 0.17
    fax: float = 0.01
    busy: float = 0.08
    no_answer: float = 0.12
    failed: float = 0.04 * 2 / 3
    failed_permanent: float = 0.04 / 3

    def __post_init__(self) -> None:
        for name, share in self.shares().items():
            if not (math.isfinite(share) and 0.0 <= share <= 1.0):
                raise ValueError(f"{name} must be a share from 0 to 1, got {share}")
        if sum(self.shares().values()) > 1.0 + 1e-9:
            raise ValueError(f"the shares add up to {sum(self.shares().values()):.3f}, more than 1")

    def shares(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @property
    def canceled(self) -> float:
        return max(0.0, 1.0 - sum(self.shares().values()))


@dataclass(frozen=True, slots=True)
class CallTimes:
    """Seconds from the request to the call's end, by how it ends (answered calls:
    ``answer`` then ``talk``; a machine is talked to as long as a person)."""

    answer: float = 6.0
    talk: float = 30.0
    ring: float = 30.0  # an unanswered call rings this long (the campaign's ring timeout)
    busy: float = 1.0
    failed: float = 0.5

    def scaled(self, factor: float) -> CallTimes:
        return CallTimes(**{f.name: getattr(self, f.name) * factor
                            for f in dataclasses.fields(self)})


@dataclass(frozen=True, slots=True)
class Ending:
    """One way a call ends: its final CallStatus, AnsweredBy, SIP code and length."""

    call_status: str
    answered_by: str | None
    sip: int | None
    seconds: float


def endings(mix: Mix, times: CallTimes, amd: AmdMode) -> list[tuple[float, Ending]]:
    """(share, ending) of every way a call may end, as the campaign's AMD reports it."""
    on = amd is not AmdMode.OFF
    machine = ("machine_end_beep" if amd is AmdMode.DETECT_MESSAGE_END else "machine_start")
    answered = times.answer + times.talk
    return [
        (mix.human, Ending("completed", "human" if on else None, None, answered)),
        (mix.machine, Ending("completed", machine if on else None, None, answered)),
        (mix.fax, Ending("completed", "fax" if on else None, None, times.answer)),
        (mix.busy, Ending("busy", None, 486, times.busy)),
        (mix.no_answer, Ending("no-answer", None, None, times.ring)),
        (mix.failed, Ending("failed", None, 503, times.failed)),
        (mix.failed_permanent, Ending("failed", None, 404, times.failed)),
        (mix.canceled, Ending("canceled", None, 487, times.answer)),
    ]


@dataclass(frozen=True, slots=True)
class Group:
    """Contacts still to call that share a place (``Location.place``) and attempts used;
    ``place`` None: located at their first claim (from before migration 0005)."""

    place: str | None
    attempts: int
    contacts: int
    on_dnc: int = 0


@dataclass
class ZoneOutlook:
    """One set of zones: its contacts, when its window first opens, its calls."""

    zones: str
    contacts: int = 0
    opens_at: dt.datetime | None = None
    calls: int = 0
    busiest_hour: int = 0


@dataclass
class Forecast:
    start: dt.datetime
    cps: float
    contacts: int = 0
    attempts: int = 0
    done: int = 0
    failed: int = 0
    never: collections.Counter[str] = field(default_factory=collections.Counter)
    first_call: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    left_at_end: int = 0  # not finished when the campaign's end (or MAX_SPAN) came
    zones: dict[str, ZoneOutlook] = field(default_factory=dict)
    hourly: collections.Counter[tuple[int, str]] = field(default_factory=collections.Counter)

    @property
    def seconds(self) -> float | None:
        """From the first call to the last call's end."""
        if self.first_call is None or self.finished_at is None:
            return None
        return (self.finished_at - self.first_call).total_seconds()


def _at(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


class _Places:
    """Planner decisions per place, each kept for the span it holds (a take until the
    window's last send instant, a deferral until its opening; a skip for good)."""

    def __init__(self, planner: Planner) -> None:
        self._planner = planner
        self._held: dict[str, tuple[str, float, object]] = {}
        self._locations: dict[str, Location] = {}

    def location(self, place: str) -> Location:
        found = self._locations.get(place)
        if found is None:
            found = self._locations[place] = Location.from_place(place)
        return found

    def label(self, place: str) -> str:
        resolved = self._planner.policy.resolve(self.location(place))
        return " ".join(resolved.zones) if resolved is not None else "no zone"

    def decide(self, place: str, ts: float) -> tuple[str, float, object]:
        """("take", until, None), ("defer", at, None) or ("skip", inf, reason)."""
        held = self._held.get(place)
        if held is not None and (held[0] == "skip" or ts < held[1]):
            return held
        decision = self._planner.decide_place(place, _at(ts))
        if isinstance(decision, Take):
            held = ("take", decision.until.timestamp(), None)
        elif isinstance(decision, Defer):
            held = ("defer", decision.at.timestamp(), None)
        else:
            assert isinstance(decision, Skip)
            held = ("skip", math.inf, decision.reason.split(":")[0])
        self._held[place] = held
        return held

    def opening(self, place: str, ts: float) -> dt.datetime | None:
        resolved = self._planner.policy.resolve(self.location(place))
        found = None if resolved is None else self._planner.next_call(resolved, _at(ts))
        return None if found is None else _at(max(found[0], ts))

    def next_due(self, place: str, when: dt.datetime) -> dt.datetime:
        return self._planner.next_due(self.location(place), when)


def forecast(campaign: Campaign, groups: Iterable[Group], *, cps: float,
             start: dt.datetime, mix: Mix, times: CallTimes, seed: int = 0,
             max_concurrent: int | None = None, poll_seconds: float = 0.5) -> Forecast:
    """Replay the campaign from ``start`` at ``cps`` (its share of the account's). A
    dispatcher with nothing due looks again every ``poll_seconds`` (DIALER_POLL_SECONDS),
    so a contact that falls due meanwhile waits for the next look."""
    planner = campaign.planner
    policy: CampaignPolicy = campaign.policy
    places = _Places(planner)
    rng = random.Random(seed)
    ways = [(share, ending) for share, ending in endings(mix, times, campaign.spec.amd_mode)
            if share > 0]
    weights = [share for share, _ in ways]
    t0 = start.timestamp()
    end_at = campaign.spec.end_at.timestamp() if campaign.spec.end_at else math.inf
    stop_at = min(end_at, t0 + MAX_SPAN.total_seconds())
    result = Forecast(start=start, cps=cps)
    due: list[tuple[float, int, str, int]] = []
    for group in groups:
        result.contacts += group.contacts
        if group.on_dnc:
            result.never["on a do-not-call list"] += group.on_dnc
        if group.place is None:
            result.never["no stored location (located at its first claim)"] += (
                group.contacts - group.on_dnc)
            continue
        zone = result.zones.setdefault(places.label(group.place),
                                       ZoneOutlook(places.label(group.place)))
        zone.contacts += group.contacts - group.on_dnc
        opens = places.opening(group.place, t0)
        if opens is not None and (zone.opens_at is None or opens < zone.opens_at):
            zone.opens_at = opens
        due.extend((t0, len(due), group.place, group.attempts)
                   for _ in range(group.contacts - group.on_dnc))
    heapq.heapify(due)
    gap = slot_spacing(cps)
    ends: list[float] = []  # calls in progress, for the concurrency limit
    t = t0
    finished = -math.inf
    while due:
        ready, seq, place, used = due[0]
        if ready > t:
            t += math.ceil((ready - t) / poll_seconds) * poll_seconds
        if t >= stop_at:
            break
        if max_concurrent is not None:
            while ends and ends[0] <= t:
                heapq.heappop(ends)
            if len(ends) >= max_concurrent:
                t = heapq.heappop(ends)
                continue
        heapq.heappop(due)
        kind, until, reason = places.decide(place, t)
        if kind == "skip":
            result.never[str(reason)] += 1
            continue
        if kind == "defer":
            heapq.heappush(due, (until, seq, place, used))
            continue
        ending = rng.choices(ways, weights)[0][1]
        ended = t + ending.seconds
        if max_concurrent is not None:
            heapq.heappush(ends, ended)
        result.attempts += 1
        if result.first_call is None:
            result.first_call = _at(t)
        label = places.label(place)
        result.zones[label].calls += 1
        result.hourly[(int((t - t0) // HOUR), label)] += 1
        verdict = decide(policy, attempt_no=used + 1, call_status=ending.call_status,
                         answered_by=ending.answered_by, sip_code=ending.sip,
                         now=_at(ended), rng=rng,
                         next_opening=functools.partial(places.next_due, place))
        if isinstance(verdict, Done | Fail):
            finished = max(finished, ended)
            if isinstance(verdict, Done):
                result.done += 1
            else:
                result.failed += 1
        else:
            heapq.heappush(due, (verdict.at.timestamp(), seq, place, used + 1))
        t += gap
    result.left_at_end = len(due)
    if finished > -math.inf:
        result.finished_at = _at(finished)
    by_zone: dict[str, int] = collections.Counter()
    for (_, label), calls in result.hourly.items():
        by_zone[label] = max(by_zone[label], calls)
    for label, busiest in by_zone.items():
        result.zones[label].busiest_hour = busiest
    return result


async def for_campaign(db: repository.Executor, campaign: Campaign, *, cps: float,
                       start: dt.datetime, mix: Mix, times: CallTimes, seed: int = 0,
                       poll_seconds: float = 0.5) -> Forecast:
    """The forecast of a stored campaign's contacts still to call; contacts already
    skipped count as never reachable, with their reason."""
    groups = [Group(r["place"], r["attempts"], r["contacts"], r["on_dnc"])
              for r in await repository.forecast_contacts(db, campaign.id)]
    result = forecast(campaign, groups, cps=cps, start=start, mix=mix, times=times,
                      seed=seed, max_concurrent=campaign.spec.max_concurrent,
                      poll_seconds=poll_seconds)
    for row in await repository.contacts_waiting(db, campaign.id, start):
        if row["why"].startswith("skipped: "):
            result.never[f"already {row['why']}"] += row["contacts"]
    return result


def hourly_rows(result: Forecast) -> list[dict[str, object]]:
    """Calls per hour from the start, per zone set, as rows for a table or chart."""
    return [{"hour": hour, "zones": label, "calls": calls}
            for (hour, label), calls in sorted(result.hourly.items())]


def campaign_share(cps: float, weight: int, other_weight: int) -> float:
    """The campaign's share of the account's CPS against the account's other running
    campaigns (their summed weight), as the dispatcher shares slots by weight."""
    return cps * weight / (weight + other_weight)
