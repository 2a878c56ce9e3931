"""A Ctrl-C swallowed inside a finalizer is still remembered (harness.interrupts)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

SCRIPT = r"""
import gc, os, signal, sys
from harness import interrupts

interrupts.install()

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs inside __del__: Python swallows its exception
        for _ in range(1000):  # give the interpreter bytecodes on which to run the handler
            pass

Finalized()
gc.collect()
print("went on after the swallowed Ctrl-C", flush=True)
assert interrupts.pressed()
try:
    interrupts.check()
except KeyboardInterrupt:
    print("check raised", flush=True)
interrupts.reset()
interrupts.check()
print("reset", flush=True)
"""


def test_ctrl_c_swallowed_by_a_finalizer_is_remembered_silently():
    """Python would print 'Exception ignored ... KeyboardInterrupt' and go on; the hook keeps it as a flag
    that check() turns back into KeyboardInterrupt, with no traceback on stderr."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["went on after the swallowed Ctrl-C", "check raised", "reset"]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


FORWARD = r"""
import gc, sys
from harness import interrupts

seen = []
sys.unraisablehook = lambda unraisable: seen.append(unraisable.exc_type.__name__)  # set after import
interrupts.install()

class Broken:
    def __del__(self):
        raise ValueError("not a Ctrl-C")

Broken()
gc.collect()
assert seen == ["ValueError"], seen
assert not interrupts.pressed()
print("forwarded", flush=True)
"""


def test_other_unraisable_errors_reach_the_hook_in_place_at_install():
    """Only KeyboardInterrupt is kept; anything else goes to the hook installed before (pytest's, a user's)."""
    done = subprocess.run([sys.executable, "-c", FORWARD], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "forwarded"
