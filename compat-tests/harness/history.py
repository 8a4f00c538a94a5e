"""A history checker for replication fault tests, after Jepsen's Kafka workload.

A test (or an external client program) records what its producers and consumers saw; `check`
then says, per partition, whether the log the consumers read agrees with what the broker
acknowledged. Standard library only.

    h = History()
    h.send_ok("p1-17", 0, 42)          # the broker acknowledged value p1-17 at partition 0 offset 42
    h.send_failed("p1-18")             # a definite failure (the broker answered an error)
    h.send_unknown("p1-19")            # indeterminate: timeout, connection lost, killed
    h.read("c1", 0, 42, "p1-17")       # consumer c1 read p1-17 at 0/42, in c1's poll order
    h.poll("c1", [(0, 43, "p2-3"), (0, 44, "p1-19")])   # one poll's records (numbers the poll)
    report = check(h)                  # final_reads_complete=True: the reads reached each end
    assert report.ok, report.details()

Values are opaque unique ids (a str or an int; every send carries its own). A consumer id is one
pass over the partitions it reads: a consumer that restarts or seeks back takes a new id
("c1.2"), or the checker sees it go backwards. Partitions are ints, or strs ("orders-0") when a
history spans topics. Not for compacted topics: compaction removes acknowledged records.

Defects (`Report.ok` is False when any is there):
    lost                  an acknowledged value that is not at its acknowledged offset: read at
                          other offsets only, or its offset read with another value, or (only
                          with final_reads_complete) never read at all
    duplicates            one value read at two or more offsets (or acknowledged at two)
    inconsistent_offsets  one offset read with two values (or acknowledged for two values)
    non_monotonic         a consumer's read of a partition at an offset not greater than its
                          previous read there (`same_poll` when both came in one poll)
    unexpected_gaps       a consumer's read of a partition, above the highest offset it had read
                          there, skips offsets that reads or acknowledgements show hold a record
                          (a gap with no record known in it is fine: transaction markers,
                          aborted batches; after a step back only the step is reported)
    failed_but_present    a definitely failed send whose value was read
Informational: unknown_present / unknown_absent (indeterminate sends read / never read),
unread_acked (acknowledged, never read, final_reads_complete=False), read_unsent (read, no send).

JSON lines, one event per line (other fields are ignored; "partition" is optional on failures):
    {"type": "send_ok", "value": "p1-17", "partition": 0, "offset": 42}
    {"type": "send_failed", "value": "p1-18"}
    {"type": "send_unknown", "value": "p1-19", "partition": 0}
    {"type": "read", "consumer": "c1", "partition": 0, "offset": 42, "value": "p1-17", "poll": 3}
`History.from_jsonl(path_or_lines, ...)` reads them, `History.write_jsonl(path_or_file)` writes
them, and `python -m harness.history [--incomplete] FILE...` checks files (exit 1 on defects).
"""
from __future__ import annotations

import json
import os
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Union

Value = Union[str, int]
Partition = Union[int, str]
Position = tuple  # (partition, offset)

SEND_OK, SEND_FAILED, SEND_UNKNOWN, READ = "send_ok", "send_failed", "send_unknown", "read"
EVENT_TYPES = (SEND_OK, SEND_FAILED, SEND_UNKNOWN, READ)


class Event(NamedTuple):
    type: str
    value: Value
    partition: Partition | None = None
    offset: int | None = None
    consumer: str | None = None
    poll: int | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self._asdict().items() if v is not None}


class History:
    """Append-only list of events. list.append is atomic in CPython, so producer callbacks on
    other threads may record into the same History; one consumer's reads must come from one
    thread, in the order the consumer returned them."""

    def __init__(self, events: Iterable[Event] = ()):
        self.events: list[Event] = list(events)
        self._polls: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.events)

    def send_ok(self, value: Value, partition: Partition, offset: int) -> None:
        self.events.append(Event(SEND_OK, value, partition, offset))

    def send_failed(self, value: Value, partition: Partition | None = None) -> None:
        self.events.append(Event(SEND_FAILED, value, partition))

    def send_unknown(self, value: Value, partition: Partition | None = None) -> None:
        self.events.append(Event(SEND_UNKNOWN, value, partition))

    def read(self, consumer: str, partition: Partition, offset: int, value: Value,
             poll: int | None = None) -> None:
        self.events.append(Event(READ, value, partition, offset, consumer, poll))

    def poll(self, consumer: str, records: Iterable[tuple[Partition, int, Value]]) -> int:
        """Record one poll's (partition, offset, value) records, in order; returns its number."""
        n = self._polls[consumer] = self._polls.get(consumer, 0) + 1
        for partition, offset, value in records:
            self.events.append(Event(READ, value, partition, offset, consumer, n))
        return n

    # ------------------------------------------------------------------ JSON lines

    def add_json(self, obj: dict) -> None:
        """One decoded JSON-lines event; ValueError when it is not a valid event."""
        self.events.append(_event_from_json(obj))

    def load_jsonl(self, source, *, ignore_cut_last_line: bool = False) -> History:
        """Append the events of a JSON-lines file (a path, or an iterable of lines). With
        ignore_cut_last_line, a last line with no newline that does not parse is dropped (the
        writer was killed mid-line); any other bad line raises ValueError naming its number."""
        if isinstance(source, (str, os.PathLike)):
            with open(source, encoding="utf-8") as f:
                return self.load_jsonl(f, ignore_cut_last_line=ignore_cut_last_line)
        name = getattr(source, "name", "<lines>")
        pending = None  # (number, line): a line is judged once we know whether it is the last
        for number, line in enumerate(source, 1):
            if pending:
                self._load_line(name, *pending, last=False, lenient=False)
            pending = (number, line)
        if pending:
            self._load_line(name, *pending, last=True, lenient=ignore_cut_last_line)
        return self

    def _load_line(self, name, number: int, line: str, *, last: bool, lenient: bool) -> None:
        if not line.strip():
            return
        try:
            self.add_json(json.loads(line))
        except ValueError as e:
            if last and lenient and not line.endswith("\n"):
                return
            raise ValueError(f"{name}:{number}: {e}: {line.strip()[:200]}") from None

    @classmethod
    def from_jsonl(cls, *sources, ignore_cut_last_line: bool = False) -> History:
        """A History from one or more JSON-lines sources, read in the order given."""
        h = cls()
        for source in sources:
            h.load_jsonl(source, ignore_cut_last_line=ignore_cut_last_line)
        return h

    def write_jsonl(self, dest) -> None:
        """Write every event as one JSON line, to a path or a text file object."""
        if isinstance(dest, (str, os.PathLike)):
            with open(dest, "w", encoding="utf-8") as f:
                return self.write_jsonl(f)
        for e in self.events:
            dest.write(json.dumps(e.to_json(), separators=(",", ":")) + "\n")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _event_from_json(obj) -> Event:
    if not isinstance(obj, dict):
        raise ValueError("an event is a JSON object")
    kind = obj.get("type")
    if kind not in EVENT_TYPES:
        raise ValueError(f"type must be one of {', '.join(EVENT_TYPES)}, not {kind!r}")
    value = obj.get("value")
    if not (isinstance(value, str) or _is_int(value)):
        raise ValueError("value must be a string or an integer")
    partition = obj.get("partition")
    needs_position = kind in (SEND_OK, READ)
    if not (isinstance(partition, str) or _is_int(partition) or (partition is None and not needs_position)):
        raise ValueError("partition must be an integer or a string")
    if not needs_position:
        return Event(kind, value, partition)
    offset = obj.get("offset")
    if not _is_int(offset) or offset < 0:
        raise ValueError("offset must be a non-negative integer")
    if kind == SEND_OK:
        return Event(kind, value, partition, offset)
    consumer, poll = obj.get("consumer"), obj.get("poll")
    if not isinstance(consumer, str):
        raise ValueError("consumer must be a string")
    if poll is not None and not _is_int(poll):
        raise ValueError("poll must be an integer")
    return Event(kind, value, partition, offset, consumer, poll)


# ---------------------------------------------------------------------- report entries

def pos(partition: Partition, offset: int) -> str:
    """p0@42 (or orders-0@42 for a string partition)."""
    return f"p{partition}@{offset}" if _is_int(partition) else f"{partition}@{offset}"


def _positions(ps) -> str:
    return ", ".join(pos(p, o) for p, o in ps)


def _who(consumers) -> str:
    return "+".join(consumers) if consumers else "nobody"


@dataclass(frozen=True)
class LostWrite:
    partition: Partition
    offset: int                         # the acknowledged offset
    value: Value
    reason: str                         # "never read" | "read at other offsets" | "offset holds another value"
    read_at: tuple[Position, ...] = ()  # where the value was read instead
    found: tuple[Value, ...] = ()       # the values read at the acknowledged offset

    def __str__(self) -> str:
        here, there = pos(self.partition, self.offset), ", ".join(map(repr, self.found))
        text = f"{here} {self.value!r} acknowledged, {self.reason}"
        if self.read_at:
            return text + f": {_positions(self.read_at)}" + (f" ({here} holds {there})" if there else "")
        return text + (f": {there}" if there else "")


@dataclass(frozen=True)
class Duplicate:
    value: Value
    positions: tuple[Position, ...]             # the (partition, offset)s it was read at
    consumers: tuple[tuple[str, ...], ...]      # who read it there, one tuple per position
    acked: tuple[Position, ...] = ()            # the (partition, offset)s it was acknowledged at

    @property
    def partition(self) -> Partition:
        return (self.positions or self.acked)[0][0]

    def __str__(self) -> str:
        where = ", ".join(f"{pos(p, o)} by {_who(c)}" for (p, o), c in zip(self.positions, self.consumers))
        return f"{self.value!r} read at {where or 'no offset'}" + \
               (f"; acknowledged at {_positions(self.acked)}" if self.acked else "")


@dataclass(frozen=True)
class InconsistentOffset:
    partition: Partition
    offset: int
    values: tuple[Value, ...]                   # every value read (or acknowledged) there
    consumers: tuple[tuple[str, ...], ...]      # who read each value there
    acked: tuple[Value, ...] = ()               # the values acknowledged at this offset

    def __str__(self) -> str:
        seen = "; ".join(f"{v!r} by {_who(c)}" + (" (acknowledged)" if v in self.acked else "")
                         for v, c in zip(self.values, self.consumers))
        return f"{pos(self.partition, self.offset)} holds {len(self.values)} values: {seen}"


@dataclass(frozen=True)
class NonMonotonic:
    partition: Partition
    consumer: str
    prev_offset: int
    offset: int
    prev_value: Value
    value: Value
    same_poll: bool     # both reads came in one poll

    def __str__(self) -> str:
        return (f"{self.consumer} read {pos(self.partition, self.offset)} {self.value!r} after "
                f"{pos(self.partition, self.prev_offset)} {self.prev_value!r}" +
                (" in the same poll" if self.same_poll else ""))


@dataclass(frozen=True)
class Gap:
    partition: Partition
    consumer: str
    prev_offset: int                    # the highest offset the consumer had read there before
    offset: int                         # the offset it read next
    skipped: tuple[int, ...]            # offsets in between that hold a known record
    values: tuple[Value, ...]           # the value known at each skipped offset
    seen_by: tuple[str, ...]            # consumers that read any skipped offset
    acked: tuple[int, ...]              # skipped offsets the broker acknowledged a send at
    same_poll: bool                     # the reads of prev_offset and offset came in one poll

    def __str__(self) -> str:
        shown = ", ".join(f"{o} {v!r}" for o, v in zip(self.skipped[:5], self.values[:5]))
        shown += f", ... ({len(self.skipped)} in all)" if len(self.skipped) > 5 else ""
        evidence = ([f"read by {_who(self.seen_by)}"] if self.seen_by else []) + \
                   ([f"{len(self.acked)} acknowledged"] if self.acked else [])
        return (f"{self.consumer} went from {pos(self.partition, self.prev_offset)} to "
                f"{pos(self.partition, self.offset)}" + (" in one poll" if self.same_poll else "") +
                f", skipping {shown} ({', '.join(evidence)})")


@dataclass(frozen=True)
class Found:
    """A value of a failed, indeterminate or unrecorded send, and where it was read (nowhere if
    absent)."""
    value: Value
    positions: tuple[Position, ...] = ()
    consumers: tuple[tuple[str, ...], ...] = ()

    def __str__(self) -> str:
        if not self.positions:
            return f"{self.value!r} never read"
        return f"{self.value!r} read at " + ", ".join(
            f"{pos(p, o)} by {_who(c)}" for (p, o), c in zip(self.positions, self.consumers))


DEFECTS = ("lost", "duplicates", "inconsistent_offsets", "non_monotonic", "unexpected_gaps",
           "failed_but_present")
TITLES = {"lost": "lost writes", "duplicates": "duplicates", "inconsistent_offsets": "inconsistent offsets",
          "non_monotonic": "non-monotonic reads", "unexpected_gaps": "unexpected gaps",
          "failed_but_present": "failed but present"}


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


@dataclass
class Report:
    lost: list[LostWrite]
    duplicates: list[Duplicate]
    inconsistent_offsets: list[InconsistentOffset]
    non_monotonic: list[NonMonotonic]
    unexpected_gaps: list[Gap]
    failed_but_present: list[Found]
    unknown_present: list[Found]                    # informational
    unknown_absent: list[Found]                     # informational
    unread_acked: list[tuple[Partition, int, Value]]  # informational (reads incomplete)
    read_unsent: list[Found]                        # informational
    acknowledged: int                               # distinct values acknowledged
    read: int                                       # distinct values read
    failed: int
    unknown: int
    partitions: int
    consumers: int
    final_reads_complete: bool = True

    @property
    def defects(self) -> dict[str, list]:
        """Every defect category (see DEFECTS), empty ones included."""
        return {name: getattr(self, name) for name in DEFECTS}

    @property
    def ok(self) -> bool:
        return not any(self.defects.values())

    def summary(self) -> str:
        counts = ", ".join(f"{TITLES[name]} {len(v)}" for name, v in self.defects.items())
        line = (f"{'OK' if self.ok else 'DEFECTS'}: {_n(self.partitions, 'partition')}, "
                f"{_n(self.consumers, 'consumer')}; {self.acknowledged} acknowledged, "
                f"{self.read} values read, {self.failed} failed, "
                f"{self.unknown} indeterminate ({len(self.unknown_present)} read, "
                f"{len(self.unknown_absent)} not read); {counts}")
        if not self.final_reads_complete:
            line += f"; {len(self.unread_acked)} acknowledged values not read (reads incomplete)"
        if self.read_unsent:
            line += f"; {len(self.read_unsent)} values read but never sent"
        return line

    def details(self, limit: int = 20) -> str:
        """The summary, then up to `limit` entries of each defect found (for assertion messages)."""
        lines = [self.summary()]
        sections = [(TITLES[name], getattr(self, name)) for name in DEFECTS]
        sections.append(("read but never sent (informational)", self.read_unsent))
        for title, entries in sections:
            if entries:
                lines.append(f"{title} ({len(entries)}):")
                lines += [f"  {e}" for e in entries[:limit]]
                if len(entries) > limit:
                    lines.append(f"  ... and {len(entries) - limit} more")
        return "\n".join(lines)


def _pk(partition: Partition) -> tuple:
    """Sort key for partitions, ints before strs."""
    return (1, partition) if isinstance(partition, str) else (0, partition)


def _same_poll(a: Event, b: Event) -> bool:
    return a.poll is not None and a.poll == b.poll


def _at(x) -> tuple:
    """Sort key for an entry with a partition and an offset."""
    return (_pk(x.partition), x.offset)


class _Many:
    """key -> its distinct items in order of first appearance. Memory is one item per key
    until a key gets a second distinct item (then a list): most keys have exactly one."""

    def __init__(self):
        self.first: dict = {}
        self.more: dict = {}

    def add(self, key, item) -> None:
        seen = self.first.setdefault(key, item)
        if seen != item:
            items = self.more.setdefault(key, [seen])
            if item not in items:
                items.append(item)

    def __contains__(self, key) -> bool:
        return key in self.first

    def __getitem__(self, key) -> list:
        return self.more.get(key) or ([self.first[key]] if key in self.first else [])


def check(history: History | Iterable[Event], *, final_reads_complete: bool = True) -> Report:
    """Check a history (see the module docstring for what is a defect). final_reads_complete
    says the consumers' reads together reached the end of every partition that holds an
    acknowledged value, so an acknowledged value never read is lost. Three linear passes over
    the events, plus a sort of the known offsets."""
    events = history.events if isinstance(history, History) else list(history)
    rank = {SEND_UNKNOWN: 0, SEND_FAILED: 1, SEND_OK: 2}
    status: dict[Value, str] = {}   # the strongest outcome of each value's sends: ok > failed > unknown
    acked, ack_at = _Many(), _Many()    # value -> acknowledged positions; position -> acknowledged values
    read_at, at = _Many(), _Many()      # value -> positions read; position -> values read
    consumers: set[str] = set()

    # Pass 1: where each value was acknowledged and read, and what was read at each offset.
    for e in events:
        if e.type == READ:
            p = (e.partition, e.offset)
            read_at.add(e.value, p)
            at.add(p, e.value)
            consumers.add(e.consumer)
        elif e.type == SEND_OK:
            p = (e.partition, e.offset)
            acked.add(e.value, p)
            ack_at.add(p, e.value)
            status[e.value] = SEND_OK
        elif rank[e.type] > rank.get(status.get(e.value), -1):
            status[e.value] = e.type

    known: dict[Partition, list[int]] = {}      # partition -> offsets known to hold a record, sorted
    for partition, offset in {*at.first, *ack_at.first}:
        known.setdefault(partition, []).append(offset)
    for offsets in known.values():
        offsets.sort()

    # Pass 2: each consumer's reads of each partition, in order.
    non_monotonic: list[NonMonotonic] = []
    gaps: list[tuple[Event, Event, list[int]]] = []
    last: dict[tuple[str, Partition], Event] = {}   # the consumer's previous read of the partition
    top: dict[tuple[str, Partition], Event] = {}    # ... and its read of the highest offset so far
    for e in events:
        if e.type != READ:
            continue
        key = (e.consumer, e.partition)
        prev, high = last.get(key), top.get(key)
        last[key] = e
        if prev is None:
            top[key] = e
            continue
        if e.offset <= prev.offset:
            non_monotonic.append(NonMonotonic(e.partition, e.consumer, prev.offset, e.offset, prev.value,
                                              e.value, _same_poll(prev, e)))
        if e.offset > high.offset:
            top[key] = e
            if e.offset > high.offset + 1:  # a step back is reported once, not again as a gap
                offsets = known[e.partition]
                i, j = bisect_right(offsets, high.offset), bisect_left(offsets, e.offset)
                if i < j:
                    gaps.append((high, e, offsets[i:j]))

    # Pass 3, only over the positions some entry names: who read which value there.
    interest: set[Position] = {*at.more, *ack_at.more}
    for v in {*read_at.more, *acked.more, *(v for v in read_at.first if status.get(v) != SEND_OK)}:
        interest.update(read_at[v])
    for _, e, skipped in gaps:
        interest.update((e.partition, o) for o in skipped)
    readers: dict[Position, dict[Value, dict[str, None]]] = {p: {} for p in interest}
    if readers:
        for e in events:
            if e.type == READ and (e.partition, e.offset) in readers:
                readers[(e.partition, e.offset)].setdefault(e.value, {})[e.consumer] = None

    def who(p: Position, v: Value) -> tuple[str, ...]:
        return tuple(readers.get(p, {}).get(v, ()))

    def found(v: Value) -> Found:
        ps = sorted(read_at[v], key=lambda p: (_pk(p[0]), p[1]))
        return Found(v, tuple(ps), tuple(who(p, v) for p in ps))

    lost: list[LostWrite] = []
    unread_acked: list[tuple[Partition, int, Value]] = []
    for v, first in acked.first.items():
        reads = read_at[v]
        if any(p in reads for p in acked[v]):
            continue
        there = tuple(at[first])
        if reads:
            lost.append(LostWrite(*first, v, "read at other offsets", tuple(reads), there))
        elif there:
            lost.append(LostWrite(*first, v, "offset holds another value", (), there))
        elif final_reads_complete:
            lost.append(LostWrite(*first, v, "never read"))
        else:
            unread_acked.append((*first, v))

    duplicates = []
    for v in dict.fromkeys([*read_at.more, *acked.more]):
        f = found(v)
        duplicates.append(Duplicate(v, f.positions, f.consumers, tuple(acked[v])))

    inconsistent = []
    for p in dict.fromkeys([*at.more, *ack_at.more]):
        values = at[p] + [v for v in ack_at[p] if v not in at[p]]
        inconsistent.append(InconsistentOffset(*p, tuple(values), tuple(who(p, v) for v in values),
                                               tuple(ack_at[p])))

    unexpected_gaps = []
    for high, e, skipped in gaps:
        positions = [(e.partition, o) for o in skipped]
        seen_by = {c: None for p in positions for by_value in readers[p].values() for c in by_value}
        unexpected_gaps.append(Gap(
            e.partition, e.consumer, high.offset, e.offset, tuple(skipped),
            tuple((at[p] or ack_at[p])[0] for p in positions), tuple(seen_by),
            tuple(p[1] for p in positions if p in ack_at), _same_poll(high, e)))

    failed_present, unknown_present, unknown_absent = [], [], []
    for v, s in status.items():
        if s == SEND_FAILED and v in read_at:
            failed_present.append(found(v))
        elif s == SEND_UNKNOWN:
            (unknown_present if v in read_at else unknown_absent).append(found(v))

    return Report(
        lost=sorted(lost, key=_at),
        duplicates=sorted(duplicates, key=lambda d: [(_pk(p), o) for p, o in d.positions or d.acked]),
        inconsistent_offsets=sorted(inconsistent, key=_at),
        non_monotonic=sorted(non_monotonic, key=lambda x: _pk(x.partition)),
        unexpected_gaps=sorted(unexpected_gaps, key=lambda x: _pk(x.partition)),
        failed_but_present=failed_present,
        unknown_present=unknown_present,
        unknown_absent=unknown_absent,
        unread_acked=sorted(unread_acked, key=lambda x: (_pk(x[0]), x[1])),
        read_unsent=[found(v) for v in read_at.first if v not in status],
        acknowledged=len(acked.first),
        read=len(read_at.first),
        failed=sum(1 for s in status.values() if s == SEND_FAILED),
        unknown=sum(1 for s in status.values() if s == SEND_UNKNOWN),
        partitions=len(known),
        consumers=len(consumers),
        final_reads_complete=final_reads_complete,
    )


def main(argv: list[str]) -> int:
    """python -m harness.history [--incomplete] FILE...: check JSON-lines histories."""
    complete = "--incomplete" not in argv
    paths = [a for a in argv if a != "--incomplete"]
    if not paths or any(a.startswith("-") for a in paths):
        print(main.__doc__, file=sys.stderr)
        return 2
    try:
        history = History.from_jsonl(*paths, ignore_cut_last_line=True)
    except (OSError, ValueError) as e:
        print(f"history: {e}", file=sys.stderr)
        return 2
    report = check(history, final_reads_complete=complete)
    print(report.details())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
