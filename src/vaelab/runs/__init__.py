"""Run folders: the one part of vaelab that knows them.

    folder.py    the layout, the lock, what vaelab writes there (and so may replace)
    run.py       Run / load_run: a saved run opened from Python (config, metrics, models, data)
    train.py     a whole run written: every seed trained, evaluated, judged, drawn, reported; resume
    commands.py  the commands on a saved run: eval, sample, plot, score
    figures.py   a run's model-specific figures (2D points, reconstructions, denoising, codes)
    report.py    RUN/report.md, rebuilt from the files in the folder

This file imports nothing: `vaelab.plots` (a figure of a Run) and `train.py` (which draws with
vaelab.plots) both live in this layer, and a package that imported its modules here would tie them
into a cycle at import time.
"""
