"""Appends the bench steps' figures to the results file `hub-bench report` reads.

One JSON object per line (see bench/src/results.rs): a measurement
{"metric", "series", "x"?, "value"} per run, or a fact {"info", "value"}. Nothing is written
unless BENCH_RESULTS names the file, so every step also runs on its own, printing its table.
"""

from __future__ import annotations

import json
import os


def _append(record: dict) -> None:
    path = os.environ.get("BENCH_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def emit(metric: str, series: str, value: float, x: float | None = None) -> None:
    record = {"metric": metric, "series": series, "value": value}
    if x is not None:
        record["x"] = x
    _append(record)


def info(key: str, value: object) -> None:
    _append({"info": key, "value": value})
