"""Scoring and running a trained EDVR: temporal windows, inference, engines, metrics, reports.

Imports nothing on its own (no torch): `vsrdata.evaluation.windows` is read by the CLI's
`--help`. The public entry points are `vsrdata.evaluate` and `vsrdata.infer`.
"""
