"""vsrdata: video super-resolution data preparation and an EDVR trainer/evaluator."""

__version__ = "0.1.0"
