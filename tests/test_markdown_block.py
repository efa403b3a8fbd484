"""``python -m benchmarks.markdown_block``: a table a reid command wrote lands in its own block, replaced in place."""

from __future__ import annotations

import subprocess
import sys


def test_a_copied_table_replaces_its_block_and_leaves_the_rest(tmp_path):
    md, table = tmp_path / "BENCHMARKS.md", tmp_path / "sweep.md"
    md.write_text("# Benchmarks\n\nintro\n", encoding="utf-8")
    for value in ("1", "2"):
        table.write_text(f"# Sweep of `x.toml`\n\n| a |\n| --: |\n| {value} |\n", encoding="utf-8")
        subprocess.run([sys.executable, "-m", "benchmarks.markdown_block", "precision", str(table), "--out", str(md)],
                       check=True)
    md.write_text(md.read_text(encoding="utf-8") + "\nafter\n", encoding="utf-8")
    table.write_text("| a |\n| --: |\n| 3 |\n", encoding="utf-8")  # no title: copied whole
    subprocess.run([sys.executable, "-m", "benchmarks.markdown_block", "precision", str(table), "--out", str(md)],
                   check=True)
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nintro\n\n<!-- precision: begin (copied from ") and text.endswith("\nafter\n")
    assert text.count("<!-- precision: begin") == 1 and "| 3 |\n<!-- precision: end -->" in text
    assert "| 1 |" not in text and "| 2 |" not in text and "Sweep of" not in text
