"""Ctrl-C that cannot get lost.

Python prints and swallows an exception raised inside a finalizer (`__del__`, weakref callbacks), and torch
runs finalizers all the time, so a KeyboardInterrupt that lands in one vanishes and the run goes on. This
module's SIGINT handler raises KeyboardInterrupt as usual *and* sets a flag; a swallowed KeyboardInterrupt
reaching `sys.unraisablehook` sets it too, silently. The loop calls `check()` at safe points.
"""

from __future__ import annotations

import signal
import sys
import threading

_pressed = threading.Event()
_installed = False
_previous_hook = sys.unraisablehook  # replaced by the hook in place when install() runs


def _on_sigint(signum, frame) -> None:
    _pressed.set()
    raise KeyboardInterrupt


def _unraisable(unraisable) -> None:
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _pressed.set()  # a Ctrl-C raised inside a finalizer: remember it, print no traceback
        return
    _previous_hook(unraisable)


def install() -> None:
    """Install the handler and the hook once, from the main thread (elsewhere signals cannot be set)."""
    global _installed, _previous_hook
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_sigint)
    _previous_hook = sys.unraisablehook  # whatever hook is in place now (pytest's, a user's), not import time's
    sys.unraisablehook = _unraisable
    _installed = True


def pressed() -> bool:
    return _pressed.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if its own exception was swallowed."""
    if _pressed.is_set():
        raise KeyboardInterrupt


def reset() -> None:
    """Forget an earlier Ctrl-C (tests; a library caller that handled it)."""
    _pressed.clear()


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have the kernel send this process `sig` when its parent dies (Linux PR_SET_PDEATHSIG; elsewhere
    nothing): a child run, or a rank of a data-parallel run, never outlives a killed launcher as an orphan
    that goes on writing the run folder."""
    if sys.platform != "linux":
        return
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # 1 = PR_SET_PDEATHSIG
