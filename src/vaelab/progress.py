"""Progress bars that render well in a terminal and in a notebook, with or without ipywidgets.

In a terminal: tqdm's text bar. In Jupyter with ipywidgets: tqdm's widget. In Jupyter without
ipywidgets: the text bar, redrawn at most every few seconds, instead of tqdm.auto's warning and
a stream of fragments.
"""
from __future__ import annotations

import importlib.util
import sys


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython ZMQ shell)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(**kwargs):
    """A tqdm bar (same keyword arguments) of the kind that suits where the code runs."""
    kwargs.setdefault("mininterval", 0.5)
    if in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
        if in_notebook():   # each redraw is a new output chunk in a notebook: redraw rarely
            kwargs["mininterval"] = max(kwargs["mininterval"], 5.0)
            kwargs.setdefault("ncols", 100)
    return tqdm(**kwargs)
