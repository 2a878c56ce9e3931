"""`harness run --processes N`: start N ranks through accelerate's launcher on a run folder already created.

Each rank runs `harness run --resume DIR`: the folder holds the resolved config (with `processes`), so the
ranks need no other flags and a later `harness run --resume DIR` starts the same count again. The launcher
is accelerate's (torch.distributed's elastic agent underneath): it sets RANK, WORLD_SIZE and the rendezvous,
and stops every rank when one fails, so a rank's error never leaves the others waiting in a collective.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
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
                             stderr=None if verbose else subprocess.PIPE,
                             preexec_fn=interrupts.die_with_parent)  # and each rank dies with the launcher
    errors: list[str] = []  # the ranks' own error lines
    shown = threading.Thread(target=_pass_ranks_output, args=(ranks.stderr, errors), daemon=True) \
        if ranks.stderr else None
    if shown is not None:
        shown.start()
    try:
        code = ranks.wait()
    except KeyboardInterrupt:
        ranks.send_signal(signal.SIGINT)
        ranks.wait()
        code = 130
    if shown is not None:
        shown.join(timeout=10)
    if code not in (0, 130) and not errors:
        print(f"error: a rank stopped with exit code {code} and no one-line error (its output, if any, is above); "
              "rerun with --verbose to see the launcher's report too", file=sys.stderr)
    return code


# the launcher's own chatter on a failure: torch elastic's log lines, then accelerate's traceback and summary
_LAUNCHER_LOG = re.compile(r"^[WEI]\d{4} \d\d:\d\d:\d\d\.\d+ \d+ .*torch/distributed/")


def _pass_ranks_output(stream, errors: list[str]) -> None:
    """Copy the ranks' stderr (plan, progress bars, results, one-line errors) to ours, without the launcher's
    report of a failed rank (shown with --verbose): the rank's own one-line error says what to change."""
    pending, launcher_report = b"", False
    while chunk := os.read(stream.fileno(), 4096):
        pending += chunk
        *segments, pending = re.split(rb"(?<=[\r\n])", pending)  # keep \r: progress bars redraw in place
        for segment in segments:
            text = segment.decode("utf-8", "replace")
            launcher_report = launcher_report or text.startswith("Traceback (most recent call last)")
            if launcher_report or _LAUNCHER_LOG.match(text):
                continue
            if text.startswith("error: "):
                if text in errors:
                    continue  # every rank met the same bad input: say it once
                errors.append(text)
            sys.stderr.write(text)
            sys.stderr.flush()
    if pending and not launcher_report:
        sys.stderr.write(pending.decode("utf-8", "replace"))
