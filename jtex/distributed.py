"""Several processes (hosts) on one job list: JAX's own runtime, ``jax.distributed``, no home-made RPC.

``jtex batch`` run by N processes -- one per host of a TPU pod slice or a SLURM
job, or several on one machine -- splits the jobs that are not finished yet
among them: process ``i`` runs every N-th one from the i-th, each batch over its
own local devices (:mod:`jtex.sharding`). Jobs are independent problems, so
nothing crosses hosts but two barriers (after the folder is scanned, and
before the summary); every process writes its own jobs' folders into the one
output folder, and process 0 writes ``failures.jsonl`` and ``summary.json``.
The output folder must be one folder for all of them (one machine, or a shared
file system).

:func:`initialize` must run before anything else touches JAX in the process.
"""

from __future__ import annotations

from jtex.errors import JtexError


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, auto: bool = False) -> None:  # fmt: skip
    """Join the processes of one run: explicitly (``coordinator`` "HOST:PORT", the count and this process's
    id, 0 ... N-1), or with ``auto`` from the environment JAX detects (a TPU pod slice, a SLURM job)."""
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise JtexError(
            "--coordinator, --num-processes and --process-id go together: give all three (or --distributed)"
        )
    if not any(given) and not auto:
        return
    if all(given):
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise JtexError(f"--process-id must be in 0..{num_processes - 1} and --num-processes at least 1, "
                            f"got {process_id} of {num_processes}")  # fmt: skip
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise JtexError(f"--coordinator {coordinator!r} is not HOST:PORT (e.g. 10.0.0.1:8476)")
    import jax

    try:
        if all(given):
            jax.distributed.initialize(coordinator, num_processes, process_id)
        else:
            jax.distributed.initialize()
    except (RuntimeError, ValueError) as e:
        raise JtexError(f"cannot join the other processes: {str(e).splitlines()[0]}; check --coordinator and that "
                        "every process was started") from None  # fmt: skip


def rank() -> int:
    """This process's index (0 without jax.distributed)."""
    import jax

    return jax.process_index()


def world() -> int:
    """The number of processes (1 without jax.distributed)."""
    import jax

    return jax.process_count()


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (nothing with one process)."""
    if world() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
