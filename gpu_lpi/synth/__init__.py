"""Synthetic crypto-futures market data with planted, labelled liquidation cascades and informed
repricings (half of them as violent as a cascade: spec §0, high sell volume is not forced selling).

:func:`synthesize` writes Binance websocket captures or Tardis CSV files plus ``labels.parquet``;
see :mod:`gpu_lpi.synth.market` for the model and :mod:`gpu_lpi.synth.calibration` for the
constants measured on real captures.
"""

from .synthesize import SynthSummary, synthesize

__all__ = ["SynthSummary", "synthesize"]
