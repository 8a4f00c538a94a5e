"""harness/history.py, the history checker, on made-up histories (no broker).

A clean history passes; each defect planted alone in it is reported alone; a gap no record is
known in is not a defect; JSON lines round-trip; 200k events check in one go.

These tests take no broker fixture, so they run once per session whatever --broker says and
are not rows of COMPAT.md (harness/matrix.py records only tests with a broker_kind).
"""
from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.history import DEFECTS, Event, History, check

HERE = Path(__file__).resolve().parent
CONSUMERS = ("c1", "c2")
POLL_RECORDS = 3


@dataclass
class Scenario:
    """Two partitions, every record acknowledged where the consumers read it, one failed and two
    indeterminate sends (one of them in the log). Tests plant a defect by editing the fields."""
    acked: dict = field(default_factory=lambda: {
        **{f"a-{o}": (0, o) for o in range(10)}, **{f"b-{o}": (1, o) for o in range(8)}})
    failed: list = field(default_factory=lambda: ["f-1"])
    unknown: list = field(default_factory=lambda: ["u-1", "u-2"])
    log: dict = field(default_factory=lambda: {
        0: [(o, f"a-{o}") for o in range(10)] + [(10, "u-1")], 1: [(o, f"b-{o}") for o in range(8)]})
    reads: dict = field(default_factory=dict)  # consumer -> [(partition, offset, value)]; default: the log

    def records(self) -> list[tuple]:
        return [(p, o, v) for p in sorted(self.log) for o, v in self.log[p]]

    def history(self) -> History:
        h = History()
        for value, (partition, offset) in self.acked.items():
            h.send_ok(value, partition, offset)
        for value in self.failed:
            h.send_failed(value)
        for value in self.unknown:
            h.send_unknown(value, 0)
        for consumer in CONSUMERS:
            records = self.reads.get(consumer, self.records())
            for i in range(0, len(records), POLL_RECORDS):
                h.poll(consumer, records[i:i + POLL_RECORDS])
        return h


def found(report) -> dict[str, int]:
    """The defect categories the report has entries in, with their counts."""
    return {name: len(entries) for name, entries in report.defects.items() if entries}


def test_clean_history_passes():
    report = check(Scenario().history())
    assert report.ok, report.details()
    assert found(report) == {}
    assert (report.acknowledged, report.read, report.failed, report.unknown) == (18, 19, 1, 2)
    assert (report.partitions, report.consumers) == (2, 2)
    assert [f.value for f in report.unknown_present] == ["u-1"]
    assert report.unknown_present[0].positions == ((0, 10),)
    assert report.unknown_present[0].consumers == (("c1", "c2"),)
    assert [f.value for f in report.unknown_absent] == ["u-2"]
    assert report.read_unsent == [] and report.unread_acked == []
    assert report.summary().startswith("OK: 2 partitions, 2 consumers; 18 acknowledged, 19 values read")
    assert report.details() == report.summary()


@pytest.mark.parametrize("how", ["tail never read", "offset holds another value", "read at another offset"])
def test_lost_acknowledged_write(how):
    s = Scenario()
    if how == "tail never read":          # acknowledged, then gone with the tail of the log
        s.acked["a-11"] = (0, 11)
    elif how == "offset holds another value":   # a new leader wrote another record at 9
        s.log[0][9] = (9, "u-3")
        s.unknown.append("u-3")
    else:                                 # truncated at 9, then written again further on
        s.log[0][9] = (9, "u-3")
        s.log[0].append((11, "a-9"))
        s.unknown.append("u-3")
    report = check(s.history())
    assert found(report) == {"lost": 1}, report.details()
    lost = report.lost[0]
    if how == "tail never read":
        assert (lost.partition, lost.offset, lost.value, lost.reason) == (0, 11, "a-11", "never read")
    else:
        assert (lost.partition, lost.offset, lost.value, lost.found) == (0, 9, "a-9", ("u-3",))
        assert lost.reason == how.replace("another offset", "other offsets")
        assert lost.read_at == (((0, 11),) if how == "read at another offset" else ())
    assert f"p0@{lost.offset} 'a-{lost.offset}' acknowledged" in report.details()


def test_unread_tail_is_not_lost_when_the_final_reads_are_incomplete():
    s = Scenario()
    s.acked["a-11"] = (0, 11)
    report = check(s.history(), final_reads_complete=False)
    assert report.ok, report.details()
    assert report.unread_acked == [(0, 11, "a-11")]
    assert "1 acknowledged values not read (reads incomplete)" in report.summary()


def test_value_at_two_offsets_is_a_duplicate():
    s = Scenario()
    s.log[0].append((11, "a-5"))          # a retry without idempotence appended a-5 again
    report = check(s.history())
    assert found(report) == {"duplicates": 1}, report.details()
    dup = report.duplicates[0]
    assert (dup.value, dup.partition, dup.positions, dup.acked) == ("a-5", 0, ((0, 5), (0, 11)), ((0, 5),))
    assert dup.consumers == (("c1", "c2"), ("c1", "c2"))
    assert "'a-5' read at p0@5 by c1+c2, p0@11 by c1+c2" in report.details()


def test_value_acknowledged_at_two_offsets_is_a_duplicate():
    h = History()
    h.send_ok("v", 0, 0)
    h.send_ok("v", 0, 1)
    report = check(h, final_reads_complete=False)
    assert found(report) == {"duplicates": 1}, report.details()
    assert report.duplicates[0].partition == 0
    assert str(report.duplicates[0]) == "'v' read at no offset; acknowledged at p0@0, p0@1"


def test_offset_read_with_two_values_is_inconsistent():
    s = Scenario()
    s.unknown.append("u-9")
    s.reads["c2"] = [(p, o, "u-9" if (p, o) == (0, 9) else v) for p, o, v in s.records()]
    report = check(s.history())
    assert found(report) == {"inconsistent_offsets": 1}, report.details()
    bad = report.inconsistent_offsets[0]
    assert (bad.partition, bad.offset, bad.values, bad.consumers, bad.acked) == \
        (0, 9, ("a-9", "u-9"), (("c1",), ("c2",)), ("a-9",))


def test_offset_acknowledged_for_two_values_is_inconsistent():
    s = Scenario()
    s.acked["a-late"] = (0, 9)            # the broker acknowledged a-late at a-9's offset too
    s.log[0].append((11, "a-late"))
    report = check(s.history())
    # a-late is at 11, not where it was acknowledged: that is a lost write too.
    assert found(report) == {"inconsistent_offsets": 1, "lost": 1}, report.details()
    bad = report.inconsistent_offsets[0]
    assert (bad.offset, bad.values, bad.consumers, bad.acked) == \
        (9, ("a-9", "a-late"), (("c1", "c2"), ()), ("a-9", "a-late"))
    assert "p0@9 'a-late' acknowledged, read at other offsets: p0@11 (p0@9 holds 'a-9')" in report.details()


def test_consumer_reading_backwards_is_non_monotonic():
    s = Scenario()
    p0 = [r for r in s.records() if r[0] == 0]
    s.reads["c2"] = p0[:6] + p0[4:] + [r for r in s.records() if r[0] == 1]   # polls [3, 4, 5] [4, 5, 6]
    report = check(s.history())
    assert found(report) == {"non_monotonic": 1}, report.details()
    back = report.non_monotonic[0]
    assert (back.partition, back.consumer, back.prev_offset, back.offset) == (0, "c2", 5, 4)
    assert (back.prev_value, back.value, back.same_poll) == ("a-5", "a-4", False)


def test_going_backwards_within_one_poll_is_flagged_as_such():
    h = History()
    for o in range(3):
        h.send_ok(f"a-{o}", 0, o)
    h.poll("c1", [(0, 0, "a-0"), (0, 1, "a-1"), (0, 0, "a-0"), (0, 1, "a-1"), (0, 2, "a-2")])
    report = check(h)
    assert found(report) == {"non_monotonic": 1}, report.details()
    assert report.non_monotonic[0].same_poll
    assert "c1 read p0@0 'a-0' after p0@1 'a-1' in the same poll" in report.details()


@pytest.mark.parametrize("evidence", ["acknowledged and read", "read by another consumer only"])
def test_skipping_a_known_offset_is_an_unexpected_gap(evidence):
    s = Scenario()
    skip = 4 if evidence == "acknowledged and read" else 10   # 10 holds u-1: indeterminate, read by c1
    s.acked["a-11"] = (0, 11)
    s.log[0].append((11, "a-11"))
    s.reads["c2"] = [r for r in s.records() if r[:2] != (0, skip)]
    report = check(s.history())
    assert found(report) == {"unexpected_gaps": 1}, report.details()
    gap = report.unexpected_gaps[0]
    assert (gap.partition, gap.consumer, gap.prev_offset, gap.offset) == (0, "c2", skip - 1, skip + 1)
    assert (gap.skipped, gap.seen_by) == ((skip,), ("c1",))
    assert gap.values == (("a-4",) if skip == 4 else ("u-1",))
    assert gap.acked == ((4,) if skip == 4 else ())
    assert gap.same_poll    # c2's polls: ..., [3, 5, 6], ... or ..., [9, 11, p1's 0]


def test_acknowledged_offset_nobody_read_is_a_gap_for_every_consumer():
    s = Scenario()
    del s.log[0][4]                       # a-4 was acknowledged at 4; every consumer goes 3 -> 5
    report = check(s.history())
    assert found(report) == {"lost": 1, "unexpected_gaps": 2}, report.details()
    assert (report.lost[0].offset, report.lost[0].reason) == (4, "never read")
    assert [(g.consumer, g.skipped, g.values, g.seen_by, g.acked) for g in report.unexpected_gaps] == \
        [(c, (4,), ("a-4",), (), (4,)) for c in CONSUMERS]
    assert "c1 went from p0@3 to p0@5 in one poll, skipping 4 'a-4' (1 acknowledged)" in report.details()


def test_definitely_failed_send_in_the_log_is_reported():
    s = Scenario()
    s.log[1].append((8, "f-1"))           # answered with an error, appended all the same
    report = check(s.history())
    assert found(report) == {"failed_but_present": 1}, report.details()
    entry = report.failed_but_present[0]
    assert (entry.value, entry.positions, entry.consumers) == ("f-1", ((1, 8),), (("c1", "c2"),))


def test_gap_with_no_known_record_is_not_an_error():
    s = Scenario()
    # Offsets 11 and 12 hold transaction markers: nothing was acknowledged or read there. Both
    # consumers read 10 then 13, in one poll.
    s.log[0] += [(13, "a-13"), (14, "a-14")]
    s.acked.update({"a-13": (0, 13), "a-14": (0, 14)})
    h = s.history()
    assert [(e.offset, e.poll) for e in h.events if e.consumer == "c1"][9:12] == [(9, 4), (10, 4), (13, 4)]
    report = check(h)
    assert report.ok, report.details()


def test_several_defects_are_all_reported():
    s = Scenario()
    s.acked["a-11"] = (0, 11)                                   # lost
    s.log[1].append((8, "f-1"))                                 # failed but present
    s.reads["c1"] = [r for r in s.records() if r[:2] != (0, 3)]  # gap
    report = check(s.history())
    assert found(report) == {"lost": 1, "failed_but_present": 1, "unexpected_gaps": 1}
    assert not report.ok
    assert report.summary().startswith("DEFECTS: ")
    text = report.details()
    for title in ("lost writes (1):", "unexpected gaps (1):", "failed but present (1):"):
        assert title in text
    assert "c1 went from p0@2 to p0@4" in text and "skipping 3 'a-3' (read by c2, 1 acknowledged)" in text


def test_details_are_bounded():
    h = History()
    for o in range(30):
        h.send_ok(f"v-{o}", 0, o)
    report = check(h)
    assert len(report.lost) == 30
    lines = report.details(limit=5).splitlines()
    assert lines[1] == "lost writes (30):"
    assert len(lines) == 1 + 1 + 5 + 1 and lines[-1] == "  ... and 25 more"


def test_defect_names_are_the_report_fields():
    report = check(History())
    assert report.ok and list(report.defects) == list(DEFECTS)
    assert report.summary().startswith("OK: 0 partitions, 0 consumers")


# ---------------------------------------------------------------------- JSON lines

def test_jsonl_round_trip(tmp_path):
    s = Scenario()
    s.log[0].append((11, "a-5"))
    original = s.history()
    path = tmp_path / "history.jsonl"
    original.write_jsonl(path)
    assert len(path.read_text().splitlines()) == len(original)
    loaded = History.from_jsonl(path)
    assert loaded.events == original.events
    assert check(loaded) == check(original)
    assert found(check(loaded)) == {"duplicates": 1}


def test_jsonl_written_by_another_program():
    # Sends from one program, reads from another; extra fields are ignored; ints and strs both.
    sends = io.StringIO(
        '{"type":"send_ok","value":"p1-17","partition":0,"offset":42,"ts":1}\n'
        '{"type":"send_ok","value":18,"partition":"orders-1","offset":0}\n'
        '\n'
        '{"type":"send_failed","value":"p1-19"}\n'
        '{"type":"send_unknown","value":"p1-20","partition":0}\n')
    reads = ['{"type":"read","consumer":"c1","partition":0,"offset":42,"value":"p1-17"}',
             '{"type":"read","consumer":"c1","partition":"orders-1","offset":0,"value":18,"poll":2}']
    h = History.from_jsonl(sends, reads)
    assert h.events == [Event("send_ok", "p1-17", 0, 42), Event("send_ok", 18, "orders-1", 0),
                        Event("send_failed", "p1-19"), Event("send_unknown", "p1-20", 0),
                        Event("read", "p1-17", 0, 42, "c1"), Event("read", 18, "orders-1", 0, "c1", 2)]
    report = check(h)
    assert report.ok and (report.acknowledged, report.read, report.partitions) == (2, 2, 2)
    h.read("c2", "orders-1", 1, 18)
    assert str(check(h).duplicates[0]) == "18 read at orders-1@0 by c1, orders-1@1 by c2; acknowledged at orders-1@0"


@pytest.mark.parametrize("line, complaint", [
    ('{"type":"send_ok","value":"v","partition":0}', "offset"),
    ('{"type":"read","value":"v","partition":0,"offset":1}', "consumer"),
    ('{"type":"send","value":"v"}', "type must be one of"),
    ('{"type":"send_ok","value":null,"partition":0,"offset":1}', "value"),
    ('{"type":"send_ok","value":"v","partition":0,"offset":-1}', "offset"),
    ('{"type":"read","consumer":"c","partition":true,"offset":1,"value":"v"}', "partition"),
    ('["send_ok"]', "JSON object"),
    ('{"type":"send_ok",', "Expecting"),
])
def test_jsonl_bad_line_names_its_number(line, complaint):
    lines = ['{"type":"send_failed","value":"v0"}\n', line + "\n", '{"type":"send_failed","value":"v1"}\n']
    with pytest.raises(ValueError, match=rf"<lines>:2: .*{complaint}"):
        History.from_jsonl(lines)


def test_jsonl_line_cut_by_a_kill():
    lines = ['{"type":"send_ok","value":"v0","partition":0,"offset":0}\n', '{"type":"send_ok","val']
    with pytest.raises(ValueError, match="<lines>:2"):
        History.from_jsonl(lines)
    assert len(History.from_jsonl(lines, ignore_cut_last_line=True)) == 1
    with pytest.raises(ValueError, match="<lines>:1"):   # only a last line may be cut
        History.from_jsonl(lines[::-1], ignore_cut_last_line=True)


def test_command_line(tmp_path):
    clean, bad = tmp_path / "clean.jsonl", tmp_path / "bad.jsonl"
    Scenario().history().write_jsonl(clean)
    s = Scenario()
    s.acked["a-11"] = (0, 11)
    s.history().write_jsonl(bad)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "harness.history", *map(str, args)], cwd=HERE,
                              capture_output=True, text=True, timeout=60)

    ok = run(clean)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: "), ok
    lost = run(bad)
    assert lost.returncode == 1 and "p0@11 'a-11' acknowledged, never read" in lost.stdout, lost
    assert run("--incomplete", bad).returncode == 0
    assert run(tmp_path / "missing.jsonl").returncode == 2


# ---------------------------------------------------------------------- size

def big_history(partitions=4, sends=50_000, consumers=3) -> tuple[History, list[tuple]]:
    h, log = History(), []
    for i in range(sends):
        p = i % partitions
        log.append((p, i // partitions, f"p{i % 5}-{i}"))
        h.send_ok(log[-1][2], p, log[-1][1])
    for c in range(consumers):
        for i in range(0, len(log), 500):
            h.poll(f"c{c}", log[i:i + 500])
    return h, log


def test_large_history():
    h, _ = big_history()
    assert len(h) == 200_000
    report = check(h)
    assert report.ok, report.details()
    assert (report.acknowledged, report.read, report.consumers, report.partitions) == (50_000, 50_000, 3, 4)


def test_large_history_with_defects():
    h, log = big_history()
    drop = {log[20_000][:2], log[30_001][:2]}       # c0 skips two records the others read
    h.events = [e for e in h.events if not (e.consumer == "c0" and (e.partition, e.offset) in drop)]
    h.send_ok("late", 3, 50_000 // 4)               # acknowledged past the end of partition 3
    report = check(h)
    assert found(report) == {"unexpected_gaps": 2, "lost": 1}, report.details()
    assert sorted((g.partition, g.skipped) for g in report.unexpected_gaps) == \
        sorted((p, (o,)) for p, o in drop)
