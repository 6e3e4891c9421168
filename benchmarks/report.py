"""Result tables, the machine description, and writing one section of benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# Benchmark results"


@dataclass
class Table:
    """One result table.

    Args:
        title: heading (rendered as ``### title``).
        columns: column names.
        rows: one list of cells per row (numbers are formatted by :func:`fmt`).
        notes: lines printed under the table.
    """

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"Table '{self.title}': row {cells!r} has {len(cells)} cells, the columns are {self.columns}.")
        self.rows.append(list(cells))

    def column(self, name: str) -> list[Any]:
        """The cells of column ``name``."""
        if name not in self.columns:
            raise ValueError(f"Table '{self.title}' has no column {name!r}; columns: {self.columns}.")
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines += [""] + self.notes
        return "\n".join(lines)


def fmt(value: Any) -> str:
    """Numbers with 3 significant digits (1 decimal from 100), None as "-", the rest as text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 100:
            return f"{value:.1f}" if abs(value) < 1e4 else f"{value:.0f}"
        return f"{value:.3g}"
    return str(value)


def machine_description() -> str:
    """One line: CPU model and cores, memory, OS, library versions, whether bf16 is fast here."""
    import torch
    import torchvision

    from autotimm.utils.precision import bf16_is_fast

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        total_kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f", {total_kib / 2**20:.0f} GiB RAM"
    except (OSError, IndexError, ValueError):
        pass
    versions = [f"torch {torch.__version__}", f"torchvision {torchvision.__version__}"]
    for module in ("timm", "onnxruntime"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {', '.join(versions)}; {torch.get_num_threads()} torch threads; "
        f"bf16 fast on this CPU: {'yes' if bf16_is_fast('cpu') else 'no'} ({bf16_hardware()})"
    )


def bf16_hardware() -> str:
    """Which bf16 units the CPU flags show: AMX (many times fp32 per core for convolutions) or
    AVX-512-BF16 (about 2x fp32); "unknown" without /proc/cpuinfo."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "bf16 units unknown"
    units = [name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512-BF16")) if flag in flags]
    return " + ".join(units) if units else "no bf16 units in the CPU flags"


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def render_section(heading: str, header_lines: Sequence[str], tables: Sequence[Table]) -> str:
    """``## heading``, the header lines, then every table."""
    parts = [f"## {heading}", "\n".join(header_lines)]
    parts += [table.markdown() for table in tables]
    return "\n\n".join(parts) + "\n"


def replace_section(text: str, heading: str, body: str) -> str:
    """``text`` with its ``## heading`` section replaced by ``body``; every other section is kept as
    it is. A missing section goes before the first ``## Notes`` section (hand-written commentary),
    else at the end."""
    marker = f"## {heading}"
    if not text.strip():
        text = TITLE + "\n"
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.rstrip() == marker), None)
    if start is None:
        start = end = next((i for i, line in enumerate(lines) if line.startswith("## Notes")), len(lines))
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    head = "\n".join(lines[:start]).rstrip("\n")
    rest = "\n".join(lines[end:]).strip("\n")
    return head + "\n\n" + body.rstrip("\n") + "\n" + ("\n" + rest + "\n" if rest else "")


def write_section(heading: str, body: str, path: Path = RESULTS) -> Path:
    """Replace (or add) the ``## heading`` section of ``path``, keeping the other sections."""
    text = path.read_text() if path.exists() else ""
    path.write_text(replace_section(text, heading, body))
    return path


def timestamp() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
