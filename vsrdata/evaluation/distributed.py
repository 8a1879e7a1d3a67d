"""Work split across the processes of a `torchrun` launch, results gathered back in order.

Small on purpose, for evaluation and training validation alike:

- `dist_env()`: (rank, local_rank, world) from torchrun's RANK / LOCAL_RANK / WORLD_SIZE
  (1 process without them). Torch-free, so the CLI can ask "am I rank 0?" before importing torch.
- `device_for(env, device)`: under torchrun, 'cuda' (or no device on a CUDA machine) becomes
  ``cuda:LOCAL_RANK``: one GPU per process.
- `process_group(env, device)`: a context that starts the default process group when there is
  more than one process and none exists yet (nccl for CUDA, gloo otherwise) and ends it after.
- `map_sharded(fn, items, env)`: item i is done by rank i % world (round robin, so the split is
  as even as the items allow); every rank gets back all results in item order. An exception on
  any rank is raised on every rank (the one of the lowest item index, the one a single process
  would meet first), so no rank waits forever for a peer that failed.
"""

from __future__ import annotations

import os
import pickle
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

__all__ = ["DistEnv", "device_for", "dist_env", "map_sharded", "process_group"]


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """True on the process that logs, prints and writes shared files (rank 0)."""
        return self.rank == 0


def dist_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """The torchrun environment (RANK, LOCAL_RANK, WORLD_SIZE); one process without it."""
    env = os.environ if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1"))
    return DistEnv(int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")), world)


def device_for(env: DistEnv, device: str | None) -> str | None:
    """`device`, except that with several processes 'cuda' or None on a CUDA machine becomes
    'cuda:LOCAL_RANK' (an explicit 'cuda:N' or 'cpu' is kept)."""
    if env.world == 1:
        return device
    import torch

    if device == "cuda" or (device is None and torch.cuda.is_available()):
        return f"cuda:{env.local_rank}"
    return device


@contextmanager
def process_group(env: DistEnv, device) -> Iterator[None]:
    """Start the default process group for `env` when needed (see the module docstring)."""
    if env.world == 1:
        yield
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    cuda = str(device).startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(str(device)))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def map_sharded(fn: Callable[[Any], Any], items: Sequence[Any], env: DistEnv | None = None) -> list[Any]:
    """[fn(item) for item in items], each item done by rank index % world; see the module docstring.
    Results must be picklable (they travel through `all_gather_object`)."""
    env = env or dist_env()
    if env.world == 1:
        return [fn(item) for item in items]
    import torch.distributed as dist

    done: list[tuple[int, Any]] = []
    error: tuple[int, BaseException] | None = None
    for i in range(env.rank, len(items), env.world):
        try:
            done.append((i, fn(items[i])))
        except Exception as exc:  # reported to every rank below, then raised
            error = (i, _portable(exc))
            break
    gathered: list = [None] * env.world
    dist.all_gather_object(gathered, (done, error))
    errors = sorted((e for _, e in gathered if e is not None), key=lambda e: e[0])
    if errors:
        raise errors[0][1]
    results = dict(pair for part, _ in gathered for pair in part)
    return [results[i] for i in range(len(items))]
