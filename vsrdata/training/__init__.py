"""EDVR training: config, data, sampler, losses, schedule, optimiser, EMA, logs and the loop.

`vsrdata.train` (the public function) lives in `vsrdata.training.loop`; the package is named
`training` so that it never shadows that lazy attribute.
"""
