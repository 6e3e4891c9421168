"""Open the FiftyOne App on a dataset or view, and close it without leaving its server behind.

FiftyOne serves the App from a child process (a service wrapper running the server's ``main.py``).
Closing the session normally stops it, but a server can outlive an interrupted kernel, so
:func:`close` also ends those processes itself: only the PIDs recorded at launch, which are children
of this Python process serving the session's port.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from autotimm.fiftyone._deps import require_fiftyone

logger = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_SERVERS: dict[int, list[Any]] = {}  # port -> psutil.Process objects of the App server we started


def in_notebook() -> bool:
    """True inside a Jupyter (or similar) kernel, where the App opens in the cell output."""
    from fiftyone.core.context import is_notebook_context

    return bool(is_notebook_context())


def _server_processes(port: int) -> list[Any]:
    """This process's descendants that serve ``port``: the server and its service wrapper."""
    import psutil

    found = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmd = proc.cmdline()
        except psutil.Error:
            continue
        if "--port" in cmd and cmd[cmd.index("--port") + 1 : cmd.index("--port") + 2] == [str(port)]:
            found.append(proc)
            parent = proc.parent()
            if parent is not None and "--51-service" in parent.cmdline() and parent not in found:
                found.append(parent)
    return found


def launch(
    samples: Any,
    port: int | None = None,
    address: str = "127.0.0.1",
    open_browser: bool = True,
    height: int | None = None,
) -> Any:
    """Serve the FiftyOne App on ``samples`` (a dataset or view) and open it.

    Args:
        samples: a FiftyOne dataset or view, e.g. ``false_positives(dataset)``.
        port: TCP port; default ``fiftyone.config.default_app_port`` (5151).
        address: interface to bind. The default 127.0.0.1 keeps the App (and your images) private
            to this machine; "0.0.0.0" exposes it to the network and logs a warning.
        open_browser: outside a notebook, open the App in the default web browser; False only serves
            it (for SSH port forwarding or a headless browser). Inside a notebook the App always
            opens in the cell output.
        height: height in pixels of the notebook cell.

    Returns:
        the ``fo.Session``; change ``session.view`` to browse another view, and end it with
        :func:`close`.

    Example:
        >>> session = launch(false_positives(dataset))  # doctest: +SKIP
        >>> close(session)  # doctest: +SKIP
    """
    fo = require_fiftyone()
    if port is None:
        port = int(fo.config.default_app_port)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be an int in 1..65535; got {port!r}.")
    if not isinstance(samples, (fo.Dataset, fo.DatasetView)):
        raise ValueError(f"samples must be a FiftyOne Dataset or DatasetView; got {type(samples).__name__}.")
    if address not in LOOPBACK:
        logger.warning("The FiftyOne App listens on %s:%d: anyone who can reach it can browse the data.", address, port)
    remote = not (open_browser or in_notebook())  # notebooks show the App in the cell instead
    session = fo.launch_app(samples, port=port, address=address, remote=remote, height=height)
    for old in [p for p, procs in _SERVERS.items() if not any(x.is_running() for x in procs)]:
        del _SERVERS[old]  # servers FiftyOne already shut down (launch_app closes the previous App)
    _SERVERS[port] = _server_processes(port)
    _wait_until_connected(session)
    return session


def _wait_until_connected(session: Any, timeout: float = 30.0) -> None:
    """Wait until the session's client has reached the server.

    The client starts pinging before the server process is up and gives up after 10 s, then sleeps
    10 s before retrying; on a busy machine the server can take longer than that to start, and a
    browser opened in the meantime shows "No dataset selected". ``launch_app`` returns once the
    server listens, so a client that is not connected by then is in that sleep: wait it out.
    """
    client = getattr(session, "_client", None)
    deadline = time.monotonic() + timeout
    while client is not None and not getattr(client, "_connected", True) and time.monotonic() < deadline:
        time.sleep(0.2)


def close(session: Any, timeout: float = 10.0) -> list[int]:
    """Close the session and end the App server processes it started.

    Args:
        session: a session from :func:`launch`.
        timeout: seconds to wait for the processes to exit after SIGTERM before SIGKILL.

    Returns:
        PIDs of the server processes that were ended (empty when another session still uses the
        server, or it was not started by this process).
    """
    import psutil
    from fiftyone.core.session import session as fo_session

    port = int(session.server_port)
    subscribed = getattr(fo_session, "_subscribed_sessions", {}).get(port, ())
    if any(s is not session for s in subscribed):
        session.close()  # another session still uses this server: leave it running
        return []
    procs = [p for p in _SERVERS.pop(port, None) or _server_processes(port) if p.is_running()]
    for proc in list(procs):  # the server may have spawned workers since launch
        try:
            procs += [c for c in proc.children(recursive=True) if c not in procs]
        except psutil.Error:
            pass
    session.close()  # FiftyOne's own shutdown: closes the client, then stops the server (~5 s)
    _terminate(procs, timeout)  # whatever outlived it
    return sorted(p.pid for p in procs)


def _terminate(procs: list[Any], timeout: float) -> None:
    """SIGTERM, wait, then SIGKILL: exactly these processes (psutil checks they are not a reused PID)."""
    import psutil

    alive = [p for p in procs if p.is_running()]
    for proc in alive:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, left = psutil.wait_procs(alive, timeout=timeout)
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=timeout)
