"""The `reid data` command (being written)."""
