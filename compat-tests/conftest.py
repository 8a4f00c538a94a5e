"""Fixtures for the compatibility suite: the same scenarios against Fjord and Apache Kafka 4.1.

    --broker fjord|kafka|both   which broker(s) every test runs against (default: fjord)
    --include-fjord-only        also run @fjord_only tests against Kafka (to validate them)

Fixtures:
    broker          one started broker per kind for the whole session; tests share it and
                    isolate themselves with unique topic names. Do not stop or crash it.
    module_broker   the same, but for one test module (for tests that may hurt a broker).
    fresh_broker    a started broker of its own for one test, on a fresh data dir: crash it,
                    stop it, restart it at will (same port, same data dir).
    broker_factory  make(extra_config) -> an unstarted broker of the kind, cleaned up after.
    cluster_factory make(extra_config) -> an unstarted 3-node cluster of the kind (node i on
                    127.0.0.i, each a broker and a controller; harness.brokers.Cluster),
                    killed after the test.

Markers:
    fjord_only      runs only against Fjord (rare: tests of Fjord-only promises).
    needs_groups    needs the group coordinator; deselected for Fjord unless FJORD_GROUPS=1.

A test that takes none of these fixtures (nor `broker_kind`) is not parametrized by broker: it
runs once per session whatever --broker says, needs neither Fjord nor the Kafka jars, and is
not a row of COMPAT.md (harness/matrix.py records only tests with a broker_kind).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.brokers import (CLUSTER_SIZE, Broker, Cluster, FjordBroker, KafkaBroker, fjord_cluster,
                             kafka_cluster)
from harness.java import kafka_libs_dir

pytest_plugins = ["harness.matrix"]  # COMPAT.md, the not_yet_on_fjord / fjord_bug markers

COMPAT_DIR = Path(__file__).resolve().parent
REPO_DIR = COMPAT_DIR.parent
KINDS = ("fjord", "kafka")


def fjord_bin() -> Path:
    return Path(os.environ.get("FJORD_BIN") or REPO_DIR / "target" / "release" / "fjord")


def pytest_addoption(parser):
    parser.addoption("--broker", choices=("fjord", "kafka", "both"), default="fjord",
                     help="broker(s) to run the scenarios against (default: fjord)")
    parser.addoption("--include-fjord-only", action="store_true", default=False,
                     help="also run @fjord_only tests against Apache Kafka (validates those tests)")


def selected_kinds(config) -> list[str]:
    choice = config.getoption("--broker")
    return list(KINDS) if choice == "both" else [choice]


def pytest_report_header(config):
    lines = [f"brokers under test: {', '.join(selected_kinds(config))}"]
    if "fjord" in selected_kinds(config):
        lines.append(f"FJORD_BIN: {fjord_bin()}")
    return lines


def pytest_collection_finish(session):
    """The brokers' prerequisites, checked once the selected tests are known: only tests that
    run against a broker (a `broker_kind` parameter) need them, so pure tests (no broker
    fixture) run without a Fjord binary or the Kafka jars."""
    config = session.config
    if config.option.collectonly:
        return
    kinds = {item.callspec.params.get("broker_kind") for item in session.items
             if getattr(item, "callspec", None)} - {None}
    if "fjord" in kinds and not os.access(fjord_bin(), os.X_OK):
        pytest.exit(f"Fjord binary not found or not executable: {fjord_bin()}\n"
                    "Build it first (cargo build --release) or point FJORD_BIN at it.", returncode=4)
    if kinds:
        try:
            kafka_libs_dir()  # both brokers need the Kafka jars (Kafka itself, DumpLogSegments)
        except FileNotFoundError as e:
            pytest.exit(str(e), returncode=4)


def pytest_generate_tests(metafunc):
    if "broker_kind" not in metafunc.fixturenames:
        return
    kinds = selected_kinds(metafunc.config)
    params = []
    for kind in kinds:
        marks = []
        if (metafunc.definition.get_closest_marker("fjord_only") and kind != "fjord"
                and not metafunc.config.getoption("--include-fjord-only")):
            marks.append(pytest.mark.skip(reason="fjord_only: checks a promise Fjord makes, "
                                                 "not Kafka (use --include-fjord-only to run it)"))
        params.append(pytest.param(kind, marks=marks, id=kind))
    metafunc.parametrize("broker_kind", params, scope="session")


_deselected_groups: list[str] = []


def pytest_collection_modifyitems(config, items):
    if os.environ.get("FJORD_GROUPS") == "1":
        return
    keep, drop = [], []
    for item in items:
        kind = getattr(item, "callspec", None) and item.callspec.params.get("broker_kind")
        (drop if item.get_closest_marker("needs_groups") and kind == "fjord" else keep).append(item)
    if drop:
        _deselected_groups.extend(i.nodeid for i in drop)
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        tr = config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"NOTE: deselected {len(drop)} test(s) marked needs_groups for fjord "
                          "(Fjord has no group coordinator yet; set FJORD_GROUPS=1 to run them)",
                          yellow=True)


def pytest_terminal_summary(terminalreporter):
    if _deselected_groups:
        terminalreporter.write_line(
            f"NOTE: {len(_deselected_groups)} needs_groups test(s) were deselected for fjord "
            "(FJORD_GROUPS != 1): " + ", ".join(_deselected_groups), yellow=True)


def make_broker(kind: str, root: Path, extra: dict[str, str] | None = None) -> Broker:
    if kind == "fjord":
        return FjordBroker(fjord_bin(), root, extra=extra)
    if kind == "kafka":
        return KafkaBroker(root, extra=extra)
    raise ValueError(kind)


def make_cluster(kind: str, roots: list[Path], extra: dict[str, str] | None = None, netns=None) -> Cluster:
    """An unstarted cluster of either kind; with a `harness.netns.Netns` that is up, every node
    in a network namespace of its own."""
    if kind == "fjord":
        return fjord_cluster(fjord_bin(), roots, extra, netns=netns)
    if kind == "kafka":
        return kafka_cluster(roots, extra, netns=netns)
    raise ValueError(kind)


@pytest.fixture(scope="session")
def broker(broker_kind, tmp_path_factory):
    b = make_broker(broker_kind, tmp_path_factory.mktemp(f"{broker_kind}-shared"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def module_broker(broker_kind, tmp_path_factory):
    b = make_broker(broker_kind, tmp_path_factory.mktemp(f"{broker_kind}-module"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def broker_factory(broker_kind, tmp_path_factory):
    made: list[Broker] = []

    def make(extra: dict[str, str] | None = None) -> Broker:
        b = make_broker(broker_kind, tmp_path_factory.mktemp(f"{broker_kind}-own"), extra)
        made.append(b)
        return b

    yield make
    for b in made:
        b.kill9()


@pytest.fixture
def fresh_broker(broker_factory):
    b = broker_factory()
    b.start()
    return b


@pytest.fixture
def cluster_factory(broker_kind, tmp_path_factory):
    made: list[Cluster] = []

    def make(extra: dict[str, str] | None = None) -> Cluster:
        roots = [tmp_path_factory.mktemp(f"{broker_kind}-node{i}") for i in range(1, CLUSTER_SIZE + 1)]
        c = make_cluster(broker_kind, roots, extra)
        made.append(c)
        return c

    yield make
    for c in made:
        c.kill9()
