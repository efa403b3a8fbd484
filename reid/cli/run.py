"""The `reid run` command (being written)."""
