"""The one way edgeq runs another program (compiler, host binary, flasher): with a timeout, and never
leaving it running, when it hangs or when edgeq itself is interrupted."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path

from edgeq.errors import EdgeqError

TIMEOUT_ENV = "EDGEQ_TIMEOUT"


def timeout_for(default: float) -> float:
    """default seconds, unless EDGEQ_TIMEOUT gives another bound for every program edgeq runs."""
    value = os.environ.get(TIMEOUT_ENV)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise EdgeqError(f"{TIMEOUT_ENV}={value!r} is not a positive number of seconds; set it to, for example, "
                         f"{TIMEOUT_ENV}=600, or unset it for the defaults.")
    return seconds


def run(args: list[str], what: str, default_timeout: float, input: bytes | str | None = None,
        cwd: str | Path | None = None, text: bool = False) -> subprocess.CompletedProcess:
    """subprocess.run with captured output, in its own process group so that a timeout, Ctrl-C or SIGTERM
    stops the program and everything it started (make's compiler children too)."""
    timeout = timeout_for(default_timeout)
    try:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, text=text,
                                start_new_session=True)
    except OSError as e:
        raise EdgeqError(f"Cannot start {what} ({args[0]}): {e.strerror}. Check it is installed and on PATH.") from None
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise EdgeqError(f"{what} did not finish within {timeout:g} s and was stopped ({shlex.join(map(str, args))}). "
                         f"If it only needs longer (a large model, a slow machine), set {TIMEOUT_ENV}=SECONDS; "
                         "otherwise it hangs, which is a bug worth reporting with the model.") from None
    except BaseException:
        stop(proc)
        raise
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def stop(proc: subprocess.Popen) -> None:
    """Terminates the process group of proc (started with start_new_session), then kills it if needed."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
