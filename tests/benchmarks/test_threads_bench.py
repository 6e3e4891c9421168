"""Smoke test of the threads benchmark: one tiny step per choice, alone and beside a busy process."""

from __future__ import annotations

import json

from benchmarks import threads


def test_threads_benchmark_runs_alone_and_beside_a_competitor(capsys):
    assert threads.main(["--choices", "old", "new", "--steps", "1", "--warmup", "0", "--image-size", "64",
                         "--batch-size", "2", "--competitors", "1"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(r["choice"], r["competitors"]) for r in rows] == [("old", 0), ("old", 1), ("new", 0), ("new", 1)]
    assert all(r["median_s"] > 0 and r["threads"] >= 1 and r["workers"] >= 0 for r in rows)
    assert "| new |" in out and "slowdown" in out
