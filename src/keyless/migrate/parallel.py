"""Spread a report's reading over the machine's cores: whole files, and big JSON-lines files in slices.

Each worker folds its share into per-key counters (``Report.groups``) and returns them with its read
statistics; the parent merges. Memory stays bounded per worker (callers, not records), and results do not
depend on the number of workers. Small inputs are read in-process: starting workers would cost more than
it saves.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from keyless.migrate.logs import expand, is_json_lines, read_logs, read_range
from keyless.migrate.records import ReadStats
from keyless.migrate.report import Report

# Below this much input, one process: worker start-up would cost more than it saves.
PARALLEL_MIN_BYTES = 32 << 20
# JSON-lines files at least this big are cut into slices of about this size.
SLICE_BYTES = 32 << 20

Unit = tuple[str, int, int]  # path, first byte, end byte (-1: the whole file, any format)


def plan(paths: list[Path], stats: ReadStats, workers: int) -> tuple[list[Unit], int]:
    """The units of work, and the total bytes they cover."""
    units: list[Unit] = []
    total = 0
    for path in expand(paths, stats):
        try:
            size = path.stat().st_size
        except OSError as err:
            stats.unreadable.append(f"{path}: {err.strerror or err}")
            continue
        total += size
        if workers > 1 and size >= 2 * SLICE_BYTES and is_json_lines(path):
            count = min(size // SLICE_BYTES, workers * 4)
            bounds = [size * i // count for i in range(count + 1)]
            units.extend((str(path), bounds[i], bounds[i + 1]) for i in range(count))
        else:
            units.append((str(path), 0, -1))
    return units, total


def work(unit: Unit, since: datetime | None, until: datetime | None) -> tuple[dict[Any, list[Any]], int,
                                                                               ReadStats]:
    path, start, end = unit
    stats = ReadStats()
    report = Report(since=since, until=until)
    if end < 0:
        report.add_all(read_logs([Path(path)], stats))
    else:
        stats.files = 1 if start == 0 else 0
        report.add_all(read_range(Path(path), start, end, stats))
    return report.groups, report.outside_window, stats


def build_report(paths: list[Path], since: datetime | None = None, until: datetime | None = None,
                 workers: int | None = None) -> tuple[Report, ReadStats]:
    workers = workers or os.cpu_count() or 1
    stats = ReadStats()
    units, total = plan(paths, stats, workers)
    report = Report(since=since, until=until)
    if workers == 1 or len(units) == 1 or total < PARALLEL_MIN_BYTES:
        results = [work(unit, since, until) for unit in units]
    else:
        # fork: the workers need nothing but this module, and start in milliseconds
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(units)), mp_context=context) as pool:
            results = list(pool.map(work, units, [since] * len(units), [until] * len(units)))
    for groups, outside, part in results:
        report.merge(groups, outside)
        stats.merge(part)
    return report, stats
