"""The `reid report` command (being written)."""
