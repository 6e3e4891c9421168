"""Run the chosen sections, judge the issue's targets, print the tables and write RESULTS.md."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.config import BenchConfig
from benchmarks.contenders import ContenderSpec
from benchmarks.report import RESULTS, Table, load_average, machine_description, render_section, timestamp, write_section

QUICK_BUDGET_S = 600.0  # the quick run must finish in 10 minutes on 2 cores
AT_FCOS = "autotimm:fcos:auto"
TV_FCOS = ("torchvision:fcos:fp32", "torchvision:fcos:bf16")


@dataclass
class Report:
    """Everything one run produced.

    Attributes:
        tables: section tables in run order, then the targets table.
        results: section name -> its raw numbers.
        header: the lines above the tables (date, machine, command, load, time).
        seconds: wall time of the whole run.
    """

    tables: list[Table] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    header: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def table(self, title_start: str) -> Table:
        """The table whose title starts with ``title_start``."""
        for table in self.tables:
            if table.title.startswith(title_start):
                return table
        raise ValueError(f"No table titled '{title_start}...'; tables: {[t.title for t in self.tables]}.")


def _section_runner(name: str) -> Any:
    if name == "speed":
        from benchmarks.speed import run_speed as run
    elif name == "memory":
        from benchmarks.memory import run_memory as run
    elif name == "accuracy":
        from benchmarks.accuracy import run_accuracy as run
    elif name == "evaluator":
        from benchmarks.evaluator import run_evaluator as run
    else:
        from benchmarks.onnx_speed import run_onnx as run
    return run


def targets_table(cfg: BenchConfig, results: dict[str, Any], seconds: float) -> Table:
    """The issue's targets: what was required, what this run reached, whether it was met."""
    table = Table("Targets", ["target", "required", "reached", "met"])
    speed = results.get("speed", {})
    for backbone, res in speed.items():
        for kind, need_fp32 in (("train", 3.0), ("infer", 4.0)):
            what = "training step" if kind == "train" else "inference"
            for ref, need in ((TV_FCOS[0], need_fp32), (TV_FCOS[1], 1.1)):
                ratio = res.ratio(kind, AT_FCOS, ref)
                if ratio is not None:
                    table.add(f"{backbone} {what}: autotimm FCOS vs {ContenderSpec.parse(ref).name}", f">= {need:g}x", f"{ratio:.2f}x", ratio >= need)
        if AT_FCOS in res.infer:
            label = ContenderSpec.parse(AT_FCOS).label
            conv = f"dense conv3x3 {label}"
            rate = res.flops[AT_FCOS][0] / res.infer[AT_FCOS].median
            ceiling = res.flops[conv][0] / res.references[conv].median
            table.add(f"{backbone} autotimm FCOS inference GFLOP/s vs dense conv ceiling ({label})", ">= 0.8x", f"{rate / ceiling:.2f}x", rate / ceiling >= 0.8)
    for backbone, res in results.get("memory", {}).items():
        for ref in TV_FCOS:
            if AT_FCOS in res and ref in res:
                ratio = res[AT_FCOS]["peak_mib"] / res[ref]["peak_mib"]
                table.add(f"{backbone} peak RSS: autotimm FCOS vs {ContenderSpec.parse(ref).name}", "<= 1.0x", f"{ratio:.2f}x", ratio <= 1.0)
    accuracy = results.get("accuracy", {})
    for ref in [k for k in accuracy if k.startswith("torchvision:fcos")]:
        for key in [k for k in accuracy if k.startswith(AT_FCOS)]:
            ours, theirs = accuracy[key]["map"], accuracy[ref]["map"]
            what = f"equal-budget mAP: {ContenderSpec.parse(key).name} vs {ContenderSpec.parse(ref).name}"
            table.add(what, "higher", f"{ours:.4f} vs {theirs:.4f}", ours > theirs)
    if AT_FCOS in accuracy and "autotimm:fcos:fp32" in accuracy:
        diff = 100 * abs(accuracy[AT_FCOS]["map"] - accuracy["autotimm:fcos:fp32"]["map"])
        table.add("equal-budget mAP: autotimm FCOS fast path vs fp32", "within 1 point", f"{diff:.2f} points", diff <= 1.0)
    overhead = results.get("evaluator", {}).get("EvaluationReport overhead")
    if overhead is not None and cfg.eval_images >= 200 and cfg.eval_detections >= 100:
        seconds_over = overhead["overhead_s"]
        table.add(f"EvaluationReport overhead over mAP ({cfg.eval_images} images x {cfg.eval_detections})", "< 1 s",
                  f"{seconds_over:.3f} s", seconds_over < 1.0)
    if cfg.mode == "quick":
        table.add("quick run wall time", f"< {QUICK_BUDGET_S:.0f} s", f"{seconds:.0f} s", seconds < QUICK_BUDGET_S)
    return table


def git_commit() -> str:
    """Short commit of the repository, with '+changes' when the working tree differs from it."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+changes" if dirty else "")


def run_all(cfg: BenchConfig, command: str, results_path: Path | None = RESULTS) -> Report:
    """Run ``cfg.sections`` in order, add the targets table, print everything, and replace the
    ``## Detectors (<mode> run)`` section of ``results_path`` (None: write nothing)."""
    report = Report()
    load_start = load_average()
    start = time.perf_counter()
    section_seconds: dict[str, float] = {}
    for name in cfg.sections:
        section_start = time.perf_counter()
        tables, raw = _section_runner(name)(cfg)
        report.results[name] = raw
        report.tables += tables
        for table in tables:
            print("\n" + table.markdown() + "\n", flush=True)
        section_seconds[name] = time.perf_counter() - section_start
        print(f"[{name}] done in {section_seconds[name]:.0f} s", flush=True)
    report.seconds = time.perf_counter() - start
    targets = targets_table(cfg, report.results, report.seconds)
    report.tables.append(targets)
    report.header = [
        f"- date: {timestamp()}; commit {git_commit()}",
        f"- machine: {machine_description()}",
        f"- command: `{command}` (sections: {', '.join(cfg.sections)})",
        f"- load average (1 min) {load_start:.1f} at the start, {load_average():.1f} at the end; "
        f"wall time {report.seconds:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in section_seconds.items())})",
        "- Ratios come from contenders interleaved in one process (A, B, C, A, B, C, ...), so a busy machine "
        "slows all of them alike; absolute times are only comparable on the same machine and load.",
    ]
    cores = os.cpu_count() or 1
    if load_start > cores and torch.get_num_threads() > 1:
        report.header.append(
            f"- WARNING: the load average ({load_start:.1f}) exceeded the {cores} cores at the start: with "
            f"{torch.get_num_threads()} threads per process, OpenMP threads wait for each other when descheduled "
            "and small ops slow down many times over. Rerun on an idle machine, or with --threads 1."
        )
    print("\n" + targets.markdown() + "\n")
    if results_path is not None:
        body = render_section(f"Detectors ({cfg.mode} run)", report.header, report.tables)
        write_section(f"Detectors ({cfg.mode} run)", body, Path(results_path))
        print(f"wrote the 'Detectors ({cfg.mode} run)' section of {results_path}", flush=True)
    return report


def set_threads(threads: int | None) -> None:
    """Use ``threads`` torch threads (default: every core)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
