"""How a doctor check is shown on a terminal: one table row, the detail wrapped, the fix under it."""

from __future__ import annotations

import textwrap

import click

from keyless.doctor import CheckResult, Status

_COLORS = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.SKIP: "bright_black"}
NAME_WIDTH = 14
STATUS_WIDTH = 5


def render_row(result: CheckResult, width: int = 110) -> str:
    """One table row, the detail wrapped under itself, and the fix (for WARN / FAIL) below it."""
    indent = " " * (NAME_WIDTH + STATUS_WIDTH + 2)
    detail = textwrap.wrap(result.detail, width=max(40, width - len(indent))) or [""]
    status = click.style(f"{result.status!s:<{STATUS_WIDTH}}", fg=_COLORS[result.status])
    lines = [f"{result.name:<{NAME_WIDTH}} {status} {detail[0]}"]
    lines += [indent + line for line in detail[1:]]
    if result.fix and result.status in (Status.WARN, Status.FAIL):
        fix = textwrap.wrap("fix: " + result.fix, width=max(40, width - len(indent)))
        lines += [indent + click.style(line, fg="cyan") for line in fix]
    return "\n".join(lines)
