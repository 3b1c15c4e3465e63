"""Command line: ``jtex batch JOBS.jsonl --output-dir DIR``, many syntheses, batched and resumable.

Parsing imports no JAX; the runner is :mod:`jtex.jobs`.
"""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jtex batch",
        description="Run one synthesis per line of a JSONL file (any jtex synth setting by its Python name, e.g. "
        '{"sources": ["a.png"], "output_width": 512, "seed": 3}). Jobs that compile to the same program run as one '
        "batch over the local devices; each job is written to DIR/job_NNNN (NNNN: its line) once complete; bad jobs "
        "go to DIR/failures.jsonl and the others go on; rerunning skips finished jobs and resumes the rest.",
    )
    a = p.add_argument
    a("jobs", help="the jobs file: one JSON object of settings per line (blank and # lines skipped)")
    a("--output-dir", required=True, help="the folder for job_NNNN/, failures.jsonl and summary.json")
    a("--max-group", type=int, default=16, help="images per batch at most (default: 16)")
    a("--quiet", action="store_true", help="no progress bars")
    d = p.add_argument_group("several processes (hosts) sharing the jobs: jax.distributed")
    d.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, the same for every process")
    d.add_argument("--num-processes", type=int, metavar="N", help="how many processes take part")
    d.add_argument("--process-id", type=int, metavar="I", help="this process, 0 ... N-1")
    d.add_argument("--distributed", action="store_true",
                   help="join from the environment JAX detects (a TPU pod slice, a SLURM job) instead")  # fmt: skip
    return p


def cmd_batch(argv):
    p = parser()
    args = p.parse_args(argv)
    if args.max_group < 1:
        p.error(f"--max-group must be 1 or more, got {args.max_group}")
    from jtex import distributed, jobs
    from jtex.errors import JtexError

    distributed.initialize(args.coordinator, args.num_processes, args.process_id, auto=args.distributed)
    s = jobs.run(args.jobs, args.output_dir, progress=not args.quiet, max_group=args.max_group)
    if "process" in s:  # not process 0, which writes and reports the summary of all
        print(f"jtex: process {s['process']}: ran {s['done']} job(s); process 0 writes the summary", file=sys.stderr)
        return
    print(f"jtex: {args.output_dir}: {s['done']} of {s['jobs']} jobs done ({s['skipped_finished']} already finished), "
          f"{s['failed']} failed, {s['seconds']:.1f} s", file=sys.stderr)  # fmt: skip
    if s["failed"]:
        raise JtexError(f"{s['failed']} job(s) failed; see {args.output_dir}/failures.jsonl for each line and reason")


COMMANDS = {"batch": cmd_batch}
