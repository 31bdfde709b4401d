"""Input components whose API payloads are checked with a clear message.

Gradio preprocesses a payload before the event function sees it, and a wrong type there
(``k="abc"``, ``languages=None``, ``instance="abc"``) failed with a generic error and a
traceback in the server log; NaN passed the bounds check and became a silent default. These
subclasses check the payload first and raise ``gr.Error`` naming the input, what it got and
what it takes, without logging a traceback (a bad request is not a server fault). In the
browser nothing changes: the widgets only ever send valid values.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr


def _fail(component, got: Any, wants: str) -> gr.Error:
    label = component.label or type(component).__name__
    shown = repr(got) if len(repr(got)) <= 60 else repr(got)[:57] + "..."
    return gr.Error(f"{label}: got {shown}; expected {wants}", print_exception=False)


def _number(component, payload: Any, optional: bool) -> Any:
    bounds = f"a number from {component.minimum} to {component.maximum}" if component.maximum is not None \
        else f"a number >= {component.minimum}" if component.minimum is not None else "a number"
    if payload is None:
        if optional:
            return None
        raise _fail(component, payload, bounds)
    if isinstance(payload, bool) or not isinstance(payload, (int, float)) or not math.isfinite(payload):
        raise _fail(component, payload, bounds)
    if (component.minimum is not None and payload < component.minimum) or \
            (component.maximum is not None and payload > component.maximum):
        raise _fail(component, payload, bounds)
    return payload


class Slider(gr.Slider):
    def preprocess(self, payload):
        return super().preprocess(_number(self, payload, optional=False))


class Number(gr.Number):
    def preprocess(self, payload):
        return super().preprocess(_number(self, payload, optional=True))


class CheckboxGroup(gr.CheckboxGroup):
    """``None`` means nothing chosen; anything but a list of the choices is refused."""

    def preprocess(self, payload):
        if payload is None:
            payload = []
        choices = [value for _, value in self.choices]
        if not isinstance(payload, (list, tuple)) or any(v not in choices for v in payload):
            raise _fail(self, payload, f"a list drawn from {choices}")
        return super().preprocess(list(payload))


class Radio(gr.Radio):
    def preprocess(self, payload):
        choices = [value for _, value in self.choices]
        if payload not in choices:
            raise _fail(self, payload, f"one of {choices}")
        return super().preprocess(payload)


class Checkbox(gr.Checkbox):
    """Only true or false (``None``: the default, off); ``"yes"`` or 1 are refused, not read as true."""

    def preprocess(self, payload):
        if payload is None:
            payload = False
        if not isinstance(payload, bool):
            raise _fail(self, payload, "true or false")
        return super().preprocess(payload)
