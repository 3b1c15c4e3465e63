"""`jtex batch` over two processes on this machine (jax.distributed, 4 forced CPU devices each) writes the
same job folders as one process, and one summary."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from jtex import image

ROOT = Path(__file__).resolve().parents[1]
GRAVEL = str(ROOT / "examples" / "gravel.png")
JOB = {"sources": [GRAVEL], "source_width": 96, "output_width": 48, "output_height": 48, "octaves": 1,
       "padding": "same", "max_iter": 6, "tol": 0, "save_every": 0}  # fmt: skip


def _runner(jobs, out, devices, *extra):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
           "JTEX_COMPILATION_CACHE": "0"}  # fmt: skip
    cmd = [sys.executable, "-m", "jtex", "batch", str(jobs), "--output-dir", str(out), "--quiet", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def test_two_processes_share_the_jobs_and_write_what_one_process_writes(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    lines = [json.dumps({**JOB, "seed": s}) for s in range(4)]
    lines.insert(2, json.dumps({**JOB, "sources": ["missing.png"]}))
    jobs.write_text("\n".join(lines) + "\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pair = [_runner(jobs, tmp_path / "two", 4, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                    "--process-id", str(i)) for i in range(2)]  # fmt: skip
    one = _runner(jobs, tmp_path / "one", 8)
    errs = [p.communicate(timeout=600)[1] for p in (*pair, one)]
    for p, err in zip((*pair, one), errs):
        assert p.returncode == (0 if p is pair[1] else 1), err  # process 0 and the single runner report the failure
    assert "process 1: ran 2 job(s)" in errs[1]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["processes"]) == (4, 1, 2)
    assert sorted(len(g["lines"]) for g in summary["groups"]) == [2, 2]  # one batch in each process
    failures = [json.loads(r) for r in (tmp_path / "two" / "failures.jsonl").read_text().splitlines()]
    assert [f["line"] for f in failures] == [3] and "missing.png" in failures[0]["reason"]
    assert not list((tmp_path / "two").glob(".process_*"))
    for line in (1, 2, 4, 5):
        a = image.load(tmp_path / "one" / f"job_{line:04d}" / "output.png")
        b = image.load(tmp_path / "two" / f"job_{line:04d}" / "output.png")
        assert np.max(np.abs(a - b)) <= 2 / 255, line
