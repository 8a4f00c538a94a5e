"""The seed example from shared/seed runs unchanged in substance and prints 'hello, kafka!'.

It uses a consumer group (FindCoordinator, JoinGroup, SyncGroup, OffsetFetch, ...), so it is
marked needs_groups: deselected for Fjord until FJORD_GROUPS=1.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "scripts" / "seed_example.py"


@pytest.mark.needs_groups
@pytest.mark.timeout(120)
def test_seed_example_prints_hello(broker):
    # test_topic does not exist beforehand: the seed relies on auto-creation
    # (auto.create.topics.enable=true). Its fixed topic and group names are used by no other test.
    proc = subprocess.run([sys.executable, str(SCRIPT), broker.bootstrap], capture_output=True,
                          text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert proc.stdout.splitlines() == ["hello, kafka!"], proc.stdout
