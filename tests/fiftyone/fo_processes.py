"""Processes the FiftyOne tests start: headless Chromium, and checks that nothing outlives a test.

Every process is ended by its own PID (never by name), children first.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import psutil

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = "apt-get update && apt-get install -y chromium"
HEADLESS_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)  # fmt: skip


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def end_processes(procs: list[psutil.Process], timeout: float = 5.0) -> None:
    """SIGTERM these processes (children first), wait, SIGKILL what is left."""
    alive = []
    for proc in procs:
        try:
            proc.terminate()
            alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    _, left = psutil.wait_procs(alive, timeout=timeout)
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=timeout)


def session_members(sid: int) -> list[psutil.Process]:
    """Processes of the session ``sid`` (a process started with ``start_new_session=True`` leads a
    session whose id is its PID; everything it spawns stays in it, even after being orphaned)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.pid != sid:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            pass
    return members


def dump_dom(url: str, screenshot: Path, user_data_dir: Path, budget_ms: int = 20000,
             timeout: float = 120.0, window: tuple[int, int] = (1400, 900)) -> str:
    """Load ``url`` in headless Chromium, let its scripts run for ``budget_ms`` of virtual time,
    save a screenshot and return the DOM.

    Chromium runs in a session of its own; afterwards every process of that session that is still
    there (zygotes, renderers) is ended by PID, and so is Chromium itself after a timeout.
    """
    cmd = [
        str(CHROMIUM), *HEADLESS_FLAGS, f"--user-data-dir={user_data_dir}",
        f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={budget_ms}",
        f"--screenshot={screenshot}", "--dump-dom", url,
    ]  # fmt: skip
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        dom, _ = browser.communicate(timeout=timeout)
    finally:
        end_processes([*reversed(session_members(browser.pid)), browser])
    return dom


def descendants() -> set[int]:
    """PIDs of every process below this one."""
    return {p.pid for p in psutil.Process().children(recursive=True)}
