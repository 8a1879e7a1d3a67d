"""`train`'s `progress` argument (`vsrdata.progress`): the run's events as two tasks.

'train' counts iterations (`unit` 'it'; a bar shows the last loss and lr; a rollback moves it
back) and 'validation' the frames of each validation of this process ('frame'; its bar is
removed when the validation ends). Built from the events `train` emits on rank 0 (`on_event`).
"""

from __future__ import annotations

from typing import Callable

from vsrdata.progress import Progress, Reporter, check_progress

__all__ = ["RunProgress"]


class RunProgress:
    """Feed it every event (`__call__`); close it when the run ends."""

    def __init__(self, progress: Progress, then: Callable[[dict], None]):
        check_progress(progress)
        self.progress, self.then = progress, then
        self.train: Reporter | None = None
        self.val: Reporter | None = None

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            self.train = Reporter(self.progress, "train", "it", event["total_iter"], initial=event["start_iter"])
            self.train.to(event["start_iter"])
        elif kind == "step" and self.train is not None:
            self.train.to(event["iter"])
            self.train.postfix(loss=f"{event['loss']:.4g}", lr=f"{event['lr']:.2e}")
        elif kind == "rollback" and self.train is not None:
            self.train.to(event["to_iter"])
        elif kind == "val_progress":
            if self.val is None:
                self.val = Reporter(self.progress, "validation", "frame", event["total"], leave=False, position=1)
            self.val.add(event["n"], event["total"])
        elif kind in ("val", "done"):
            self._close_val()
        self.then(event)

    def _close_val(self) -> None:
        if self.val is not None:
            self.val.close()
            self.val = None

    def close(self) -> None:
        self._close_val()
        if self.train is not None:
            self.train.close()
