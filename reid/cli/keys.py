"""``reid keys [SECTION]``: every key a spec can set, with its type, default, allowed values and meaning.

Examples:
    reid keys                 # all tables
    reid keys loss            # the [loss] table
    reid keys --format json   # for scripts
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from reid.cli.app import FormatOption, OutputFormat, app, print_json
from reid.spec_keys import spec_keys, spec_tables


@app.command("keys")
def keys(
    section: Annotated[Optional[str], typer.Argument(help=f"one table: {', '.join(spec_tables())}")] = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """List every spec key (or SECTION's): type, default, allowed values, description — the schema validation uses."""
    rows = spec_keys(section)
    if fmt is OutputFormat.json:
        print_json([asdict(row) for row in rows])
        return
    table = Table(box=box.SIMPLE_HEAD, show_lines=False)
    for column in ("key", "type", "default", "allowed", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.key, row.type, row.default, row.allowed, row.description)
    Console(highlight=False).print(table)
