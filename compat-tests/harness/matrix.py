"""pytest plugin: the compatibility matrix (COMPAT.md) and the Fjord-status markers.

Markers (registered here):
    not_yet_on_fjord(reason)  the scenario needs something Fjord does not have yet (an API, a
                              feature). Deselected for fjord, with a NOTE line naming each one,
                              and shown as "not yet on Fjord" in the matrix. FJORD_NOT_YET=1 runs
                              them anyway (to see whether they pass now).
    fjord_bug(reason)         passes on Kafka, fails on Fjord because of a Fjord bug: a strict
                              xfail on fjord (so the test turns red once the bug is fixed; then
                              drop the marker).

Every run (re)writes compat-tests/COMPAT.md: one row per client x scenario, one column per
broker. A run only replaces the cells it ran, so `--broker fjord` keeps the Kafka column from
the last `--broker kafka` run; each column says which run(s) its cells come from. The state is
kept as JSON inside an HTML comment at the end of the file. Suites summarised by a test (the
franz-go kgo suite) are recorded with `record_suite(...)`. A test with no broker_kind parameter
(a pure test, e.g. test_seed.py's check of the vendored seed code) runs once and is no row.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

COMPAT_DIR = Path(__file__).resolve().parent.parent
COMPAT_MD = Path(os.environ.get("FJORD_COMPAT_MD") or COMPAT_DIR / "COMPAT.md")
STATE_RE = re.compile(r"<!-- compat-state\n(.*)\n-->", re.S)
KINDS = ("fjord", "kafka")
# Parameters that name the client of a scenario, in order of preference.
CLIENT_PARAMS = ("client", "producer", "tool")
MODULE_CLIENTS = {  # scenarios with no client parameter and no client named in the test's name
    "test_garbage": "raw protocol", "test_dump_log": "kafka-dump-log", "test_seed": "seed example",
    "test_franz_go_suite": "franz-go kgo suite", "test_admin": "kafka-python", "test_compaction": "kafka-python",
    "test_cluster": "kafka-python",
}
# A client named in a test's name (checked in this order) when it has no client parameter.
NAME_CLIENTS = (("kafka_configs", "kafka-configs"), ("consumer_groups_tool", "kafka-consumer-groups"),
                ("kafka_python", "kafka-python"), ("confluent", "confluent-kafka"), ("aiokafka", "aiokafka"),
                ("java", "java"), ("franz", "franz-go"), ("kcat", "kcat"), ("raw", "raw protocol"))

_results: dict[tuple[str, str], dict[str, str]] = {}   # (client, scenario) -> {kind: result}
_suites: dict[tuple[str, str], str] = {}                # (suite, kind) -> summary
_not_yet: list[str] = []


def record_suite(name: str, kind: str, summary: str) -> None:
    _suites[(name, kind)] = summary


def pytest_configure(config):
    config.addinivalue_line("markers", "not_yet_on_fjord(reason): needs something Fjord lacks yet; "
                                       "deselected for fjord unless FJORD_NOT_YET=1")
    config.addinivalue_line("markers", "fjord_bug(reason): a known Fjord bug; strict xfail on fjord")
    config.addinivalue_line("markers", "client(name): the client a scenario uses, for COMPAT.md")


def _default_client(module: str, name: str) -> str:
    return next((c for token, c in NAME_CLIENTS if token in name), None) or MODULE_CLIENTS.get(module, module)


def _kind(item) -> str | None:
    cs = getattr(item, "callspec", None)
    return cs.params.get("broker_kind") if cs else None


def _row(item) -> tuple[str, str]:
    cs = getattr(item, "callspec", None)
    params = dict(cs.params) if cs else {}
    params.pop("broker_kind", None)
    client = None
    for p in CLIENT_PARAMS:
        if p in params:
            client = str(params.pop(p))
            break
    marker = item.get_closest_marker("client")
    if client is None and marker:
        client = marker.args[0]
    module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else "?"
    name = item.originalname if hasattr(item, "originalname") else item.name
    if client is None:
        client = _default_client(module, name)
    rest = ", ".join(f"{k}={v}" for k, v in params.items())
    return client, f"{module.removeprefix('test_')}: {name.removeprefix('test_')}" + (f" [{rest}]" if rest else "")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    run_anyway = os.environ.get("FJORD_NOT_YET") == "1"
    keep, drop = [], []
    for item in items:
        kind = _kind(item)
        bug = item.get_closest_marker("fjord_bug")
        if bug and kind == "fjord":
            item.add_marker(pytest.mark.xfail(reason="Fjord bug: " + (bug.args[0] if bug.args else ""),
                                              strict=True))
        ny = item.get_closest_marker("not_yet_on_fjord")
        if ny and kind == "fjord" and not run_anyway:
            drop.append(item)
            reason = ny.args[0] if ny.args else ""
            _results.setdefault(_row(item), {})["fjord"] = f"not yet on Fjord ({reason})"
        else:
            keep.append(item)
    if drop:
        _not_yet.extend(f"{i.nodeid} ({i.get_closest_marker('not_yet_on_fjord').args[0]})" for i in drop)
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"NOTE: deselected {len(drop)} test(s) marked not_yet_on_fjord for fjord "
                          "(set FJORD_NOT_YET=1 to run them)", yellow=True)
    config.stash[_collected_key] = [(_row(i), _kind(i)) for i in items]


_collected_key = pytest.StashKey[list]()


def pytest_deselected(items):
    for item in items:
        if item.get_closest_marker("needs_groups") and _kind(item) == "fjord" \
                and not item.get_closest_marker("not_yet_on_fjord"):
            _results.setdefault(_row(item), {})["fjord"] = "not run (needs_groups deselected: FJORD_GROUPS)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    kind = _kind(item)
    if kind is None:
        return
    row = _row(item)
    cell = _results.setdefault(row, {})
    res = None
    if rep.when == "call" or (rep.when == "setup" and (rep.failed or rep.skipped)) or \
            (rep.when == "teardown" and rep.failed):
        if hasattr(rep, "wasxfail"):
            res = ("xfail: " + rep.wasxfail) if rep.skipped else "XPASS (strict): the Fjord bug looks fixed"
        elif rep.passed:
            res = "pass" if rep.when == "call" else None
        elif rep.skipped:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            reason = reason.removeprefix("Skipped: ")
            res = ("not run on this broker" if "fjord_only" in reason else "skip: " + reason)
        elif rep.failed:
            res = "FAIL" if rep.when == "call" else f"FAIL ({rep.when})"
    if res is not None:
        if rep.when == "teardown" and cell.get(kind) == "pass":
            cell[kind] = res
        elif rep.when != "teardown":
            cell[kind] = res


def pytest_terminal_summary(terminalreporter):
    if _not_yet:
        terminalreporter.write_line(f"NOTE: {len(_not_yet)} not_yet_on_fjord test(s) were deselected for "
                                    "fjord: " + "; ".join(_not_yet), yellow=True)


# --------------------------------------------------------------------------- COMPAT.md

def _git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=COMPAT_DIR, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _load_state() -> dict:
    try:
        m = STATE_RE.search(COMPAT_MD.read_text())
        return json.loads(m.group(1)) if m else {}
    except (OSError, ValueError):
        return {}


def _migrate(state: dict) -> dict:
    """Re-derive the client of rows recorded under an older naming rule (a module name or
    "(per scenario)") and merge them into the current row."""
    cells = state.get("cells", {})
    for key in list(cells):
        client, scenario = key.split("\x1f", 1)
        if not (client.startswith("test_") or client == "(per scenario)"):
            continue
        module, _, name = scenario.partition(": ")
        new = _default_client("test_" + module, name.split(" [", 1)[0])
        if new == client:
            continue
        merged = cells.pop(key)
        merged.update(cells.get(f"{new}\x1f{scenario}", {}))
        cells[f"{new}\x1f{scenario}"] = merged
    return state


def _narrowed(config) -> bool:
    o = config.option
    return bool(o.keyword or o.markexpr or getattr(o, "lf", False) or getattr(o, "deselect", None) or
                [a for a in config.args if Path(a).resolve() != COMPAT_DIR])


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if config.option.collectonly or not (_results or _suites) or os.environ.get("FJORD_COMPAT_MD") == "-":
        return
    choice = config.getoption("--broker")
    kinds = list(KINDS) if choice == "both" else [choice]
    state = _migrate(_load_state())
    cells = state.setdefault("cells", {})
    runs = state.setdefault("runs", {})
    suites = state.setdefault("suites", {})
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = _git("rev-parse", "--short", "HEAD") or "?"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += "+changes"
    narrowed = _narrowed(config)
    for kind in kinds:
        run_id = f"{kind} {now}"
        runs[run_id] = {"broker": kind, "date": now, "commit": commit,
                        "selection": "partial (-k/-m/paths)" if narrowed else "full"}
        collected = {(c, s) for (c, s), k in config.stash.get(_collected_key, []) if k == kind}
        if not narrowed:  # a full run: forget rows of this broker that no longer exist
            for key in list(cells):
                client, scenario = key.split("\x1f")
                if (client, scenario) not in collected and kind in cells[key] and \
                        not (_results.get((client, scenario), {}).get(kind)):
                    del cells[key][kind]
        for (client, scenario), by_kind in _results.items():
            if kind in by_kind:
                old = cells.get(f"{client}\x1f{scenario}", {}).get(kind)
                if narrowed and old and by_kind[kind].startswith("not run (needs_groups"):
                    continue  # a partial run's deselection does not hide a real result
                cells.setdefault(f"{client}\x1f{scenario}", {})[kind] = {"result": by_kind[kind], "run": run_id}
        for (suite, k), summary in _suites.items():
            if k == kind:
                suites.setdefault(suite, {})[kind] = {"result": summary, "run": run_id}
    for key in [k for k, v in cells.items() if not v]:
        del cells[key]
    used = {c["run"] for v in cells.values() for c in v.values()} | \
           {c["run"] for v in suites.values() for c in v.values()}
    state["runs"] = {k: v for k, v in runs.items() if k in used}
    COMPAT_MD.write_text(render(state))


def _short(result: str) -> str:
    if result == "pass":
        return "pass"
    return result.replace("|", "\\|").replace("\n", " ")


def _category(result: str) -> str:
    for prefix, word in (("pass", "pass"), ("FAIL", "FAIL"), ("xfail", "xfail (Fjord bug)"),
                         ("XPASS", "XPASS"), ("not yet", "not yet on Fjord"), ("not run", "not run"),
                         ("skip", "skip")):
        if result.startswith(prefix):
            return word
    return result


def render(state: dict) -> str:
    state = _migrate(state)
    runs = state.get("runs", {})
    run_no = {r: i + 1 for i, r in enumerate(sorted(runs, key=lambda r: (runs[r]["broker"], runs[r]["date"])))}
    latest = {}
    for r, info in runs.items():
        if info["broker"] not in latest or info["date"] > runs[latest[info["broker"]]]["date"]:
            latest[info["broker"]] = r

    bugs: list[str] = []

    def cell(c: dict | None) -> str:
        if not c:
            return "not run on this broker"
        txt = _short(c["result"])
        if txt.startswith("xfail: Fjord bug: "):
            reason = txt.removeprefix("xfail: Fjord bug: ")
            if reason not in bugs:
                bugs.append(reason)
            txt = f"xfail: Fjord bug [{bugs.index(reason) + 1}]"
        if latest.get(runs.get(c["run"], {}).get("broker")) != c["run"]:
            txt += f" (run {run_no.get(c['run'], '?')})"
        return txt

    lines = ["# Compatibility matrix", "",
             "Written by every `compat-tests/run.sh` run (see `harness/matrix.py`); do not edit by hand.",
             "Each run replaces only the cells it ran, so one broker's column survives a run of the other.",
             "Results: `pass`; `FAIL`; `xfail: Fjord bug: …` (passes on Kafka, a known Fjord bug, strict);",
             "`not yet on Fjord (…)` (needs an API or feature Fjord does not have yet; deselected);",
             "`not run on this broker` (e.g. a Fjord-only check); `skip: …`.", "", "## Runs", "",
             "| run | broker | date | commit | selection |", "|---|---|---|---|---|"]
    for r in sorted(run_no, key=run_no.get):
        info = runs[r]
        mark = " (latest)" if latest.get(info["broker"]) == r else ""
        lines.append(f"| {run_no[r]}{mark} | {info['broker']} | {info['date']} | {info['commit']} | {info['selection']} |")
    lines += ["", "Cells from a run other than the broker's latest name their run.", ""]
    suites = state.get("suites", {})
    if suites:
        lines += ["## Peer test suites", "", "| suite | Fjord | Apache Kafka 4.1 |", "|---|---|---|"]
        for name in sorted(suites):
            s = suites[name]
            lines.append(f"| {name} | {cell(s.get('fjord'))} | {cell(s.get('kafka'))} |")
        lines.append("")
    cells = state.get("cells", {})
    by_client: dict[str, list[tuple[str, dict]]] = {}
    for key, v in cells.items():
        client, scenario = key.split("\x1f")
        by_client.setdefault(client, []).append((scenario, v))
    totals = {k: {} for k in KINDS}
    for v in cells.values():
        for k in KINDS:
            if k in v:
                word = _category(v[k]["result"])
                totals[k][word] = totals[k].get(word, 0) + 1
    lines += ["## Totals", ""]
    for k in KINDS:
        lines.append(f"- {'Fjord' if k == 'fjord' else 'Apache Kafka 4.1'}: " +
                     (", ".join(f"{n} {w}" for w, n in sorted(totals[k].items())) or "no results"))
    lines += ["", "## Scenarios", ""]
    for client in sorted(by_client, key=str.lower):
        lines += [f"### {client}", "", "| scenario | Fjord | Apache Kafka 4.1 |", "|---|---|---|"]
        for scenario, v in sorted(by_client[client]):
            esc = scenario.replace("|", "\\|")
            lines.append(f"| {esc} | {cell(v.get('fjord'))} | {cell(v.get('kafka'))} |")
        lines.append("")
    if bugs:
        lines += ["## Known Fjord bugs (strict xfail on Fjord; each passes on Apache Kafka)", ""]
        lines += [f"{i + 1}. {b}" for i, b in enumerate(bugs)] + [""]
    lines += ["<!-- compat-state", json.dumps(state, indent=0, sort_keys=True), "-->", ""]
    return "\n".join(lines)
