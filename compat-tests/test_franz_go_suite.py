"""franz-go's own integration suite (pkg/kgo of franz-go v1.22.3) against the broker.

run.sh compiles the suite once (`go test -c`, see setup-clients.sh); this runs the binary with
KGO_SEEDS=<broker> KGO_TEST_RF=1 from the package's source folder (some tests read its files).

- Apache Kafka: the whole suite (about 4 minutes) — this is how the allowlist was learned.
- Fjord: only the tests in franz-go/allowlist.txt (about 1.5 minutes); every one must pass.
  FRANZ_GO_FULL=1 runs the whole suite against Fjord too (TestTxnEtl then hangs until the
  timeout: Fjord has no transactions), to find tests to add to the allowlist.
Tests that do not pass on Fjord are explained in franz-go/FINDINGS.md. The result (passed/total)
goes into COMPAT.md.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from harness.matrix import record_suite

HERE = Path(__file__).resolve().parent
ALLOWLIST = HERE / "franz-go" / "allowlist.txt"
SUITE = "franz-go v1.22.3 pkg/kgo tests"
RESULT_RE = re.compile(r"^--- (PASS|FAIL|SKIP): (\S+) \(([\d.]+)s\)")


def allowlist() -> list[str]:
    return [line.split("#", 1)[0].strip() for line in ALLOWLIST.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def kgo_binary() -> tuple[str, str]:
    exe, src = os.environ.get("FJORD_KGO_TEST", ""), os.environ.get("FJORD_KGO_DIR", "")
    if not (os.access(exe, os.X_OK) and Path(src, "config.go").is_file()):
        pytest.fail(f"franz-go's test binary ({exe!r}) or source ({src!r}) missing: run compat-tests/run.sh")
    return exe, src


def all_tests(exe: str, src: str) -> list[str]:
    out = subprocess.run([exe, "-test.list", "."], cwd=src, capture_output=True, text=True, timeout=60).stdout
    return [t for t in out.split() if t.startswith(("Test", "Fuzz"))]


@pytest.mark.timeout(1200)
def test_franz_go_suite(broker, broker_kind, tmp_path):
    exe, src = kgo_binary()
    everything = all_tests(exe, src)
    allowed = allowlist()
    unknown = sorted(set(allowed) - set(everything))
    assert not unknown, f"allowlist names tests the suite does not have: {unknown}"
    full = broker_kind == "kafka" or os.environ.get("FRANZ_GO_FULL") == "1"
    wanted = everything if full else allowed
    args = [exe, "-test.count=1", "-test.v", f"-test.timeout={'15m' if full else '8m'}",
            "-test.run", "^(" + "|".join(map(re.escape, wanted)) + ")$"]
    env = dict(os.environ, KGO_SEEDS=broker.bootstrap, KGO_TEST_RF="1", GOMAXPROCS=os.environ.get("GOMAXPROCS", "4"))
    log = tmp_path / "kgo.log"
    with open(log, "w") as f:
        proc = subprocess.run(args, cwd=src, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=1100)
    results: dict[str, str] = {}
    for line in log.read_text(errors="replace").splitlines():
        m = RESULT_RE.match(line)
        if m:
            results[m.group(2)] = m.group(1)  # subtests (with '/') are not in `wanted`; ignore them
    passed = sorted(t for t in wanted if results.get(t) == "PASS")
    skipped = sorted(t for t in wanted if results.get(t) == "SKIP")
    other = sorted(t for t in wanted if results.get(t) not in ("PASS", "SKIP"))
    if full:
        summary = f"{len(passed)}/{len(everything)} passed ({len(skipped)} skipped: needs SASL/share groups/… setup)"
    else:
        summary = (f"{len(passed)}/{len(allowed)} allowlisted passed; allowlist is {len(allowed)} of "
                   f"{len(everything)} tests (see franz-go/FINDINGS.md)")
    record_suite(SUITE, broker_kind, summary)
    print(f"{SUITE} on {broker_kind}: {summary}; log {log}")
    if full and broker_kind == "fjord":
        newly = sorted(set(passed) - set(allowed))
        print("passing on fjord but not allowlisted:", newly)
    failed_allowed = sorted(set(allowed) - set(passed))
    assert not failed_allowed, (
        f"allowlisted franz-go tests did not pass on {broker_kind} (exit {proc.returncode}): {failed_allowed}\n"
        f"not passed: {[(t, results.get(t, 'no result (timeout?)')) for t in failed_allowed][:20]}\n"
        f"log: {log}\n" + "\n".join(log.read_text(errors='replace').splitlines()[-40:]))
