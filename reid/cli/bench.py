"""The `reid bench` command (being written)."""
