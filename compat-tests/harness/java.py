"""Run Java main classes from the Apache Kafka 4.1.0 jars that run.sh resolved.

The jars live in $FJORD_KAFKA_LIBS, by default
${FJORD_CACHE:-$HOME/.cache/fjord}/kafka-4.1.0/libs (see kafka/pom.xml).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

COMPAT_DIR = Path(__file__).resolve().parent.parent
LOG4J2_CONFIG = COMPAT_DIR / "kafka" / "log4j2.properties"
LOG4J2_TOOLS_CONFIG = COMPAT_DIR / "kafka" / "log4j2-tools.properties"


def cache_dir() -> Path:
    return Path(os.environ.get("FJORD_CACHE") or Path.home() / ".cache" / "fjord")


def kafka_libs_dir() -> Path:
    libs = Path(os.environ.get("FJORD_KAFKA_LIBS") or cache_dir() / "kafka-4.1.0" / "libs")
    if not (libs / "kafka_2.13-4.1.0.jar").is_file():
        raise FileNotFoundError(
            f"Apache Kafka 4.1.0 jars not found in {libs}; run compat-tests/run.sh "
            "(it resolves them with Maven) or set FJORD_KAFKA_LIBS")
    return libs


def java_command(main_class: str, args: list[str], *, logs_dir: Path | None = None,
                 jvm_opts: list[str] | None = None) -> list[str]:
    """`java -cp 'libs/*' main_class args...`; Kafka's log4j output goes to logs_dir/server.log."""
    opts = ["-Xmx512m"] if jvm_opts is None else list(jvm_opts)
    if logs_dir is not None:
        opts += [f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}", f"-Dkafka.logs.dir={logs_dir}"]
    else:
        # Tools: warnings to stderr only, so stdout is just the tool's output.
        opts += [f"-Dlog4j2.configurationFile={LOG4J2_TOOLS_CONFIG}"]
    return ["java", *opts, "-cp", f"{kafka_libs_dir()}/*", main_class, *args]


def run_java_main(main_class: str, args: list[str], *, timeout_s: float = 120,
                  logs_dir: Path | None = None, jvm_opts: list[str] | None = None,
                  check: bool = True) -> subprocess.CompletedProcess:
    """Run a Kafka tool to completion (bounded by timeout_s) and capture its output."""
    cmd = java_command(main_class, args, logs_dir=logs_dir, jvm_opts=jvm_opts)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{main_class} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}")
    return proc
