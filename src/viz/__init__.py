"""Altair chart builders for the book, one module per kind of chart.

Importing ``src.viz`` (or any of its modules) registers the "offline" Altair renderer
of ``src.viz.offline`` and, when the environment variable ``OFFLINE_CHARTS_ENV`` is
"1" (the book build sets it for the kernels that run the chapters), enables it, so that
the built site draws the charts without a CDN. Elsewhere, JupyterLab for one, Altair's
default renderer stays in place.
"""

from __future__ import annotations

import os

import altair as alt

from src.viz.offline import OFFLINE_CHARTS_ENV, RENDERER_NAME

if os.environ.get(OFFLINE_CHARTS_ENV) == "1":
    alt.renderers.enable(RENDERER_NAME)
