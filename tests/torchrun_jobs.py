"""Multi-process jobs in tests: ``torchrun`` launching ``reid run`` on two CPU ranks (gloo), and finding a rank."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_environment() -> dict[str, str]:
    """This process's environment (the suite's ``REID_CACHE`` included) for a job's processes: collectives time out
    after 30 s, output unbuffered, one thread per rank (two ranks share the two cores)."""
    return dict(os.environ, REID_DIST_TIMEOUT="30", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def torchrun(args: list[str], restarts: int = 0, logs: Path | None = None) -> subprocess.Popen:
    """``torchrun --nproc_per_node 2 -m reid run ARGS --plain`` in its own session (stdout and stderr together);
    ``logs``: each rank's output in its own file, ``LOGS/<job>/attempt_N/<rank>/stderr.log``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           f"--max-restarts={restarts}"]
    if logs is not None:
        cmd += ["--log-dir", str(logs), "--redirects", "3"]
    return subprocess.Popen([*cmd, "-m", "reid", "run", *args, "--plain"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=job_environment(), start_new_session=True)


def rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of the child of ``launcher`` running ``rank`` (read from its environment), or None if none is."""
    out = subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True).stdout.split()
    for pid in out:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    return None
