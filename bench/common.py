"""Helpers the benchmarks share: imports from the repository, a cache outside it, machine facts, RESULTS.md.

A benchmark script does `from common import ...` (bench/ is on sys.path when it runs as
`python bench/<name>.py`), calls `watch = CpuWatch()` before measuring and `append_results(...)` after.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"

if str(ROOT) not in sys.path:  # so benchmarks can import bot.* and tests.gguf_factory from a checkout
    sys.path.insert(0, str(ROOT))


def cache_dir(*parts: str) -> Path:
    """A folder outside the repository for large generated files (`SCOPEBOT_BENCH_CACHE` overrides)."""
    base = Path(os.environ.get("SCOPEBOT_BENCH_CACHE") or Path.home() / ".cache" / "scopebot-bench")
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    """Total memory in GiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def machine() -> str:
    """One line naming the machine: CPU model, cores, RAM, OS and Python."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB.

    VmHWM, not `ru_maxrss`: after fork and exec, Linux carries the parent's resident size into the child's
    `ru_maxrss`, so a child started by a big parent would report the parent's memory as its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _busy_jiffies() -> tuple[float, float]:
    """Machine-wide (busy, total) CPU time from /proc/stat, in seconds."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return (total - idle) / ticks, total / ticks


def _our_cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class CpuWatch:
    """How much of the machine others used while we measured: load averages and foreign CPU time."""

    load_before: tuple[float, float, float] = field(default_factory=load_average)
    started: float = field(default_factory=time.monotonic)
    _busy0: float = field(default_factory=lambda: _busy_jiffies()[0])
    _ours0: float = field(default_factory=_our_cpu_seconds)

    def summary(self) -> str:
        """Load before and after, and the share of all cores used by processes other than this benchmark."""
        wall = time.monotonic() - self.started
        busy = _busy_jiffies()[0] - self._busy0
        ours = _our_cpu_seconds() - self._ours0
        cores = os.cpu_count() or 1
        foreign = max(0.0, busy - ours) / (wall * cores) if wall > 0 else 0.0
        after = load_average()
        verdict = "busy" if foreign > 0.10 else "quiet"
        return (
            f"load average before {_fmt_load(self.load_before)}, after {_fmt_load(after)}; "
            f"other processes used {foreign:.0%} of the {cores} cores during the {wall / 60:.1f} min run "
            f"(machine {verdict})"
        )


def _fmt_load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def append_results(title: str, body: str, *, watch: CpuWatch | None = None) -> Path:
    """Append a dated section with the machine (and how busy it was) to bench/RESULTS.md."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = f"## {title} — {now}\n\nMachine: {machine()}."
    if watch is not None:
        head += f" {watch.summary()}."
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by `python bench/<name>.py`; newest last.\n", "utf-8")
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(f"\n{head}\n\n{body.strip()}\n")
    return RESULTS
