"""Every selection in the URL, so that any view can be reloaded, bookmarked or sent to someone.

A page seeds its widgets' session state from the query string the first time it runs in a session
(the widget keys are absent then: a new tab, a reload, a link, a page switch), and publishes what it
shows back into the query string after its widgets have run. Widgets get their value from the
session state alone, never also a `default=`/`index=`, so Streamlit has one source of truth.

Streamlit's own `bind="query-params"` drops a value from the URL when it equals the widget's
default; here the defaults depend on the data (the newest candidate), so a shared link would change
meaning when a new run arrives. Publishing explicitly keeps every link exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import streamlit as st

Value = str | int | None | Sequence[str]


def seed(
    key: str,
    param: str,
    default: Any = None,
    *,
    options: Iterable[Any] | None = None,
    many: bool = False,
    parse: Callable[[str], Any] = str,
) -> None:
    """Give the widget `key` its value: from the URL's `param` when the key is new this session
    and the URL holds a valid value, else `default`. Options no longer offered (a deleted run)
    are ignored rather than shown."""
    if key in st.session_state:
        return
    allowed = None if options is None else list(options)
    value = default
    if param in st.query_params:
        try:
            raw = [parse(v) for v in st.query_params.get_all(param) if v != ""]
        except ValueError:
            raw = []
        if many:
            value = [v for v in raw if allowed is None or v in allowed]
        elif raw and (allowed is None or raw[-1] in allowed):
            value = raw[-1]
    st.session_state[key] = value


def keep(key: str, options: Sequence[Any], default: Any) -> None:
    """Fall back to `default` when the widget's value is no longer among its options (another
    suite picked, a run deleted)."""
    if st.session_state.get(key) not in options:
        st.session_state[key] = default


def publish(params: Mapping[str, Value]) -> None:
    """Make the query string say exactly `params`: None and "" are left out, an empty list is
    written as an empty value (a filter with nothing picked is not the default filter)."""
    clean: dict[str, str | list[str]] = {}
    for name, value in params.items():
        if value is None or value == "":
            continue
        if isinstance(value, str | int):
            clean[name] = str(value)
        else:
            clean[name] = [str(v) for v in value] or [""]
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    wanted = {k: v if isinstance(v, list) else [v] for k, v in clean.items()}
    if current != wanted:
        st.query_params.from_dict(clean)
