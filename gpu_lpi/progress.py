"""Progress bars that suit where the output goes.

On a terminal a long step shows a tqdm bar; when the output is a file or a pipe (a CI log, ``nohup``)
nothing is drawn, so that a log never fills with thousands of carriage-return updates. The
commands print their own one-line summaries either way.
"""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(total: float, desc: str, unit: str = "it", enabled: bool = True, **options) -> tqdm:
    """A tqdm bar on standard error when it is a terminal (and ``enabled``), else a silent one.

    Parameters
    ----------
    total : float
        Work to do, in ``unit``.
    desc : str
        What is being done.
    unit : str, default "it"
    enabled : bool, default True
        False: never draw (the bar still counts).
    **options
        Other ``tqdm`` options (``unit_scale``...).
    """
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, leave=False,
                **options)
