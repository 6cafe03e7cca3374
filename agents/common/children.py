"""Child processes die with the command that started them, however it ends (``kill -9`` included).

An extraction starts a fork server, decoding workers and a resource tracker; a sweep starts local Ray
(GCS, raylet, dashboard and runtime-env agents, workers). Killed with SIGKILL, the command runs no
clean-up, and some of those processes would live on, holding memory and ignoring SIGTERM.

:func:`reap_children_on_exit` tags every process started from then on with an environment variable
(inherited through forks and execs alike) and starts a small watcher process in its own session. The
watcher blocks on a pipe whose only write end this process holds; the pipe closes when this process is
gone, whatever the cause, and the watcher then SIGKILLs every process carrying the tag and exits. Some
processes rewrite the memory that ``/proc/<pid>/environ`` shows (Ray's agents set their process titles over
it), so the watcher also notes every process below this one once a second while it lives, and kills those
too (each checked by its start time, so a reused pid is never hit). It finds nothing to do after a clean
exit, where the command stopped its children itself.
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
import os, select, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the command must not end its watcher
fd, needle, owner = int(os.environ[sys.argv[1]]), f"{sys.argv[2]}={sys.argv[3]}".encode(), int(sys.argv[4])
me = os.getpid()
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[1]), fields[19]  # parent pid, start time (tells a reused pid apart)
seen = {}  # pid -> start time of every process seen below the owner
def scan_tree():
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)] = stat(int(name))
            except (OSError, ValueError, IndexError):
                pass
    below, todo = set(), [owner]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _) in parents.items():
            if ppid == parent and pid not in below and pid != me:
                below.add(pid)
                todo.append(pid)
    seen.update({pid: parents[pid][1] for pid in below})
def tagged():
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me:
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                pass
    return found
def ours():
    left = set(tagged())
    for pid, started in seen.items():
        try:
            if stat(pid)[1] == started:
                left.add(pid)
        except (OSError, ValueError, IndexError):
            pass
    return left
while True:  # the tree is scanned every second while the owner lives: it still knows the orphans afterwards
    if select.select([fd], [], [], 1.0)[0]:
        if not os.read(fd, 4096):
            break
    else:
        scan_tree()
for _ in range(50):  # processes may start others while they are being killed: until none is left
    pids = ours()
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
        [sys.executable, "-c", _WATCHER, _FD_VARIABLE, OWNER_VARIABLE, token, str(os.getpid())], pass_fds=(read_end,),
        env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    os.close(read_end)
    _pipe_write_end = write_end  # held open until this process ends; never closed by hand
    os.environ[OWNER_VARIABLE] = token
    return token
