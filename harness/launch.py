"""`harness run --processes N`: start N ranks through accelerate's launcher on a run folder already created.

Each rank runs `harness run --resume DIR`: the folder holds the resolved config (with `processes`), so the
ranks need no other flags and a later `harness run --resume DIR` starts the same count again. The launcher
is accelerate's (torch.distributed's elastic agent underneath): it sets RANK, WORLD_SIZE and the rendezvous,
and stops every rank when one fails, so a rank's error never leaves the others waiting in a collective.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from harness import interrupts


def free_port() -> int:
    """A TCP port free right now, for the ranks' rendezvous (two runs on one host must not share one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch_command(processes: int, run_dir: Path, verbose: bool) -> list[str]:
    # --multi_gpu is accelerate's multi-process mode on GPU and CPU hosts alike (its --cpu starts one process);
    # the explicit values keep accelerate from printing its "not passed" notices.
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()),
            "-m", "harness", "run", "--resume", str(run_dir), *(["--verbose"] if verbose else [])]


def launch(processes: int, run_dir: Path, verbose: bool) -> int:
    """Run the ranks to the end; their exit status (130 after Ctrl-C, which the terminal sends them too)."""
    env = dict(os.environ)
    # torch's launcher sets 1 thread per rank when unset; share the host's cores out instead
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    ranks = subprocess.Popen(launch_command(processes, run_dir, verbose), env=env,
                             preexec_fn=interrupts.die_with_parent)  # and each rank dies with the launcher
    try:
        return ranks.wait()
    except KeyboardInterrupt:
        ranks.send_signal(signal.SIGINT)
        ranks.wait()
        return 130
