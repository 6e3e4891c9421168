"""The DetectorBuilder in a real browser: Voilà serves a notebook on 127.0.0.1, headless Chromium
types, clicks and moves a slider, and the kernel (Python side) must see every change.

The kernel writes the builder's state to a JSON file on every change (tests/notebooks/builder_app.ipynb);
the page must also show what Python computed back (backbone facts, generated code). A screenshot is
kept in test-artifacts/notebooks/builder_voila.png.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest


from nb_browser import CHROMIUM, CHROMIUM_INSTALL, Chromium, Voila, descendants, group_alive, wait_until
from nb_runner import REPO, kernel_env

APP = Path(__file__).with_name("builder_app.ipynb")
SCREENSHOT = REPO / "test-artifacts" / "notebooks" / "builder_voila.png"

SEARCH = "document.querySelector('input[placeholder^=\"e.g. resnet\"]')"
LEAF_TEXT = "Array.from(document.querySelectorAll('*')).find(e => !e.children.length && e.textContent.trim() === '{text}')"
CODE_TEXT = "Array.from(document.querySelectorAll('textarea')).map(t => t.value).join('\\n')"


def _by_text(selector: str, text: str) -> str:
    return f"Array.from(document.querySelectorAll('{selector}')).find(e => e.textContent.trim() === '{text}')"


def _slider_handle(description: str) -> str:
    slider = (
        "Array.from(document.querySelectorAll('.widget-slider'))"
        f".find(e => e.querySelector('.widget-label')?.textContent.trim() === '{description}')"
    )
    return f"{slider}.querySelector('.noUi-handle')"


pytestmark = pytest.mark.slow


def test_builder_in_voila_sees_typing_clicks_and_slider(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent; install it with: {CHROMIUM_INSTALL}")
    if importlib.util.find_spec("voila") is None or importlib.util.find_spec("websocket") is None:
        pytest.skip("Voilà is not installed: pip install voila (it brings websocket-client)")
    state_file = tmp_path / "builder_state.json"
    env = kernel_env(tmp_path)
    env["AUTOTIMM_BUILDER_STATE"] = str(state_file)

    def state_when(ok: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if not state_file.exists():
                return None
            state = json.loads(state_file.read_text())
            return state if ok(state) else None

        return wait_until(check, 90, f"the kernel to see {what}", server.proc, server.log)

    with Voila(APP, tmp_path, env) as server, Chromium(tmp_path) as browser:
        page = browser.page
        page.navigate(server.url)
        wait_until(lambda: page.evaluate(f"!!{SEARCH}"), 240, "the builder to render", server.proc, server.log)
        state = state_when(lambda s: True, "the initial settings")
        assert (state["backbone"], state["detection_arch"], state["head_num_convs"]) == ("resnet18", "fcos", 2)
        assert state["errors"] == []

        # 1. Type a backbone name in the search box and press Enter.
        page.click(SEARCH)
        page.type_text("convnext_tiny")
        page.press("Enter", 13)
        state = state_when(lambda s: s["backbone"] == "convnext_tiny", "the typed backbone")
        assert "FeatureBackboneConfig('convnext_tiny', pretrained=True, fallback_to_scratch=True)" in state["code"]
        # Python's answer shows in the page: convnext_tiny's feature channels in the facts table.
        wait_until(lambda: "192, 384, 768" in page.evaluate("document.body.innerText"), 30, "the backbone facts")

        # 2. Open the Architecture tab and click the YOLOX toggle.
        page.click(_by_text(".lm-TabBar-tab", "Architecture"))
        page.click(_by_text("button", "yolox"))
        state = state_when(lambda s: s["detection_arch"] == "yolox", "the YOLOX toggle")
        assert state["backbone"] == "convnext_tiny"

        # 3. Move the head_num_convs slider two steps to the right with the keyboard.
        page.evaluate(f"{_slider_handle('head_num_convs')}.focus()")
        page.press("ArrowRight", 39)
        page.press("ArrowRight", 39)
        state = state_when(lambda s: s["head_num_convs"] == 4, "the moved slider")
        assert (state["backbone"], state["detection_arch"], state["errors"]) == ("convnext_tiny", "yolox", [])

        # The generated code in the page follows all three changes.
        code = wait_until(lambda: (lambda t: t if "head_num_convs=4," in t else None)(page.evaluate(CODE_TEXT)),
                          30, "the generated code to update")
        assert "detection_arch='yolox'," in code
        assert "FeatureBackboneConfig('convnext_tiny'" in code
        page.click(_by_text(".lm-TabBar-tab", "Backbone"))
        page.click(LEAF_TEXT.format(text="Python code"))  # open the code panel for the screenshot
        visible = "document.querySelector('textarea').getBoundingClientRect().height > 0"
        wait_until(lambda: page.evaluate(visible), 10, "the code panel to open")
        page.screenshot(SCREENSHOT)
        kernels = [p.pid for p in descendants(server.proc.pid) if "ipykernel" in " ".join(p.cmdline())]
        assert len(kernels) == 1, "Voilà should run the notebook in one kernel"

    # Everything started is gone: server, its kernel, browser and its helpers.
    assert set(kernels) <= set(server.ended)
    for pid in server.ended + browser.ended:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    assert not group_alive(server.proc.pid) and not group_alive(browser.proc.pid)
    assert SCREENSHOT.stat().st_size > 10_000
