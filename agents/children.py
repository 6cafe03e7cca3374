"""Child processes die with the command that started them, however it ends (``kill -9`` included).

An extraction starts a fork server, decoding workers and a resource tracker; a sweep starts local Ray
(GCS, raylet, dashboard and runtime-env agents, workers). Killed with SIGKILL, the command runs no
clean-up, and some of those processes would live on, holding memory and ignoring SIGTERM.

:func:`reap_children_on_exit` tags every process started from then on with an environment variable
(inherited through forks and execs alike) and starts a small watcher process in its own session. The
watcher blocks on a pipe whose only write end this process holds; the pipe closes when this process is
gone, whatever the cause, and the watcher then SIGKILLs every process carrying the tag and exits. It
finds nothing to do after a clean exit, where the command stopped its children itself.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

#: Environment variable that tags the processes of one command.
OWNER_VARIABLE = "GLIMPSE_OWNER"
_FD_VARIABLE = "GLIMPSE_OWNER_PIPE"

_WATCHER = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the command must not end its watcher
fd, needle = int(os.environ[sys.argv[1]]), f"{sys.argv[2]}={sys.argv[3]}".encode()
while os.read(fd, 4096):
    pass
def tagged():
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                pass
    return found
for _ in range(50):  # processes may start others while they are being killed: until none is left
    pids = tagged()
    if not pids:
        break
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.1)
"""

_pipe_write_end: int | None = None


def reap_children_on_exit() -> str | None:
    """Make every process started from now on die once this one is gone; returns the tag (None off Linux).

    Call it once, early in a command's entry point, before it starts any process. Later calls return the
    same tag.
    """
    global _pipe_write_end
    if _pipe_write_end is not None:
        return os.environ.get(OWNER_VARIABLE)
    if not sys.platform.startswith("linux"):
        return None
    token = f"{os.getpid()}-{secrets.token_hex(8)}"
    read_end, write_end = os.pipe()  # both close-on-exec: children started later never hold the write end
    env = {k: v for k, v in os.environ.items() if k != OWNER_VARIABLE}  # the watcher is not one to kill
    env[_FD_VARIABLE] = str(read_end)
    subprocess.Popen(
        [sys.executable, "-c", _WATCHER, _FD_VARIABLE, OWNER_VARIABLE, token], pass_fds=(read_end,), env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    os.close(read_end)
    _pipe_write_end = write_end  # held open until this process ends; never closed by hand
    os.environ[OWNER_VARIABLE] = token
    return token
