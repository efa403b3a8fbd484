"""The `reid inspect` command (being written)."""
