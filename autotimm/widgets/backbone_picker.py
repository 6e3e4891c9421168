"""``BackbonePicker``: search timm's detection-capable models, filter by family, see what each gives."""

from __future__ import annotations

import html
from typing import Any, Sequence

from autotimm.models.neck import check_strides
from autotimm.widgets._ipywidgets import traitlets, widgets
from autotimm.widgets.catalog import (
    ALL_FAMILIES,
    DEFAULT_STRIDES,
    BackboneInfo,
    backbone_info,
    close_names,
    family_names,
    search_backbones,
)


class BackbonePicker(widgets.VBox):
    """Search box + family filter + list of matching backbones + facts about the chosen one.

    Facts (parameters, feature channels and strides the detector takes) are computed on the
    ``meta`` device and cached, so moving through the list is instant after the first visit.

    Args:
        value: initially chosen backbone.
        pattern: initial search text (substring or wildcard).
        family: initial family filter ("all" or a timm module name such as "convnext").
        strides: the detector strides the facts are computed for.
        max_results: most names listed at once.

    Attributes:
        value: the chosen timm name (a trait; observe it), None when nothing matches.
        error: why ``value`` cannot be used ("" when it can).
        search, family, choices, info: the child widgets.

    Example:
        >>> picker = BackbonePicker("resnet50"); picker  # doctest: +SKIP
        >>> picker.search.value = "convnext"; picker.value  # doctest: +SKIP
        'convnext_atto'
    """

    value = traitlets.Unicode(None, allow_none=True)
    error = traitlets.Unicode("")

    def __init__(
        self,
        value: str | None = "resnet50",
        pattern: str = "",
        family: str = ALL_FAMILIES,
        strides: Sequence[int] = DEFAULT_STRIDES,
        max_results: int = 1000,
        **kwargs: Any,
    ) -> None:
        families = [ALL_FAMILIES, *family_names()]
        if family not in families:
            raise ValueError(f"BackbonePicker(family={family!r}): expected 'all' or one of {families[1:]}.")
        if max_results < 1:
            raise ValueError(f"BackbonePicker(max_results={max_results!r}): expected an int >= 1.")
        self.strides = check_strides(strides)
        self.max_results = max_results
        self.search = widgets.Text(
            value=pattern, description="Search", placeholder="e.g. resnet, convnext*, efficientnet_b",
            continuous_update=False,
        )
        self.family = widgets.Dropdown(options=families, value=family, description="Family")
        self.choices = widgets.Select(options=[], rows=8, description="Backbone", layout=widgets.Layout(width="420px"))
        self.count = widgets.HTML()
        self.info = widgets.HTML()
        super().__init__([widgets.HBox([self.search, self.family]), self.choices, self.count, self.info], **kwargs)
        self._syncing = False
        self.search.observe(self._on_filter, "value")
        self.family.observe(self._on_filter, "value")
        self.choices.observe(self._on_choice, "value")
        self.observe(self._on_value, "value")
        self._refresh(prefer=value)
        if value is not None and self.value != value:
            self.value = value  # not in the listed matches: goes through the search box

    @property
    def backbone_info(self) -> BackboneInfo | None:
        """Facts about the chosen backbone, or None when there is no usable choice."""
        if self.value is None or self.error:
            return None
        return backbone_info(self.value, self.strides)

    # ------------------------------------------------------------------ handlers
    def _on_filter(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._refresh(prefer=self.value)

    def _on_choice(self, change: dict[str, Any]) -> None:
        if change["new"] is not None and not self._syncing:
            self.value = change["new"]

    def _on_value(self, change: dict[str, Any]) -> None:
        name = change["new"]
        if name is not None and name not in self.choices.options and not self._syncing:
            # Set from code: show it through the search box, keeping the value even when unknown.
            self._syncing = True
            try:
                self.search.value = name
                self.family.value = ALL_FAMILIES
            finally:
                self._syncing = False
            self._refresh(prefer=name, keep_value=True)
        self._describe()

    # ------------------------------------------------------------------ logic
    def _refresh(self, prefer: str | None, keep_value: bool = False) -> None:
        matches = search_backbones(self.search.value, self.family.value)
        shown = matches[: self.max_results]
        chosen = self._pick(matches, prefer)
        if chosen is not None and chosen not in shown:
            shown = [chosen, *shown[:-1]]
        self._syncing = True
        try:
            self.choices.options = shown
            self.choices.value = chosen
        finally:
            self._syncing = False
        more = f" (first {len(shown)} shown)" if len(matches) > len(shown) else ""
        self.count.value = f"<small>{len(matches)} matching backbones{more}</small>"
        if not keep_value:
            if self.value == chosen:
                self._describe()
            else:
                self.value = chosen

    def _pick(self, matches: list[str], prefer: str | None) -> str | None:
        if not matches:
            return None
        query = self.search.value.strip().lower()
        for candidate in (prefer, query):
            if candidate in matches:
                return candidate
        return matches[0]

    def _describe(self) -> None:
        if self.value is None:
            query, family = self.search.value, self.family.value
            close = close_names(query) if query else []
            hint = f" Close names: {', '.join(close)}." if close else ""
            self.error = f"No backbone matches {query!r} in family {family!r}.{hint}"
            self.info.value = _error_html(self.error)
            return
        try:
            info = backbone_info(self.value, self.strides)
        except ValueError as err:
            self.error = str(err)
            self.info.value = _error_html(self.error)
            return
        self.error = ""
        self.info.value = info_html(info)


def _error_html(message: str) -> str:
    return f"<span style='color:#b00020'>{html.escape(message, quote=False)}</span>"


def info_html(info: BackboneInfo) -> str:
    """A small HTML table of a backbone's facts."""
    rows = [
        ("Backbone", f"<b>{html.escape(info.name)}</b>"),
        ("Family", html.escape(info.family)),
        ("Parameters", f"{info.num_params / 1e6:.2f} M"),
        ("Feature channels", ", ".join(map(str, info.channels))),
        ("Strides", ", ".join(map(str, info.reductions))),
        ("timm stages", ", ".join(map(str, info.out_indices))),
    ]
    if info.nhwc:
        rows.append(("Layout", "channels-last (permuted by the detector)"))
    body = "".join(f"<tr><td style='padding-right:1em'>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"
