"""Input components whose API payloads are checked with a clear message.

Gradio preprocesses a payload before the event function sees it, and a wrong type there
(``k="abc"``, ``languages=None``, ``instance="abc"``, ``image=5``) failed with a generic error
(``{"error": null}`` to the client) and a traceback in the server log; NaN passed the bounds
check and became a silent default. These subclasses check the payload first and raise
``gr.Error`` naming the input, what it got and what it takes, without logging a traceback (a
bad request is not a server fault). Whole-number inputs (a slider with an integer step, a
number with precision 0) use ``ranges.whole_number``, the check every callback uses too, so an
endpoint refuses exactly what the callbacks refuse. In the browser nothing changes: the widgets
only ever send valid values.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr
import pydantic

from ccr_demo.ui.ranges import bounds_text, shown_value, whole_number


def _fail(component, got: Any, wants: str) -> gr.Error:
    label = component.label or type(component).__name__
    return gr.Error(f"{label}: got {shown_value(got)}; expected {wants}", print_exception=False)


def _is_whole(component) -> bool:
    """Whether the component only takes whole numbers (Top k, Instance #, Re-rank k, ...)."""
    if isinstance(component, gr.Slider):
        return float(component.step).is_integer() and float(component.minimum).is_integer()
    return getattr(component, "precision", None) == 0


def _number(component, payload: Any, optional: bool) -> Any:
    label = component.label or type(component).__name__
    if payload is None and optional:
        return None
    if _is_whole(component):
        try:
            return whole_number(payload, component.minimum, component.maximum, label)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None
    bounds = bounds_text(component.minimum, component.maximum, "a number")
    if payload is None or isinstance(payload, bool) or not isinstance(payload, (int, float)) \
            or not math.isfinite(payload):
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


class File(gr.File):
    """An upload input: anything but uploaded files (``5``, ``"x"``, ``{"a": 1}``, ``[5]``) is
    refused naming the input. Gradio validates a file payload against its data model before any
    ``preprocess`` runs, so the check sits in the data model: a subclass of Gradio's own, whose
    validation error becomes the message (the API schema, computed first, stays Gradio's)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.api_info()  # cached: clients read Gradio's schema of FileData / ListFiles, unchanged
        self.data_model = _checked_model(self, self.data_model)


def _checked_model(component: gr.File, model: type) -> type:
    """``model`` (FileData or ListFiles) whose validation error is a ``gr.Error`` naming ``component``."""
    wants = ("a list of uploaded files" if component.file_count != "single" else "an uploaded file") \
        + " (gradio_client: handle_file(path))"

    class Checked(model):
        @classmethod
        def model_validate(cls, obj, *args, **kwargs):
            try:
                return super().model_validate(obj, *args, **kwargs)
            except pydantic.ValidationError:
                raise _fail(component, obj, wants) from None

    Checked.__name__ = Checked.__qualname__ = model.__name__
    return Checked
