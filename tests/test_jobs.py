"""jtex batch: jobs grouped into batches, bad lines recorded, folders atomic, a killed runner resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from jtex import cli, image, jobs, synth
from jtex.config import SynthConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(output_width=40, output_height=40, source_width=80, octaves=1, padding="same", max_iter=3, save_every=1)
EXAMPLES = ["brick", "gravel", "grass"]


def _write_jobs(path: Path, n: int, missing_at: int | None = None, **extra) -> None:
    lines = ["# jobs"]
    for i in range(n):
        src = "examples/missing.png" if i == missing_at else f"examples/{EXAMPLES[i % 3]}.png"
        lines.append(json.dumps({"sources": [src], "seed": i, **TINY, **extra}))
    path.write_text("\n".join(lines) + "\n")


def test_bad_lines_are_recorded_and_the_rest_run(tmp_path, capsys):
    jf = tmp_path / "jobs.jsonl"
    good = json.dumps({"sources": ["examples/brick.png"], "seed": 4, **TINY})
    jf.write_text(
        "\n".join([good, "{oops", json.dumps({"sources": ["examples/brick.png"], "octaves": 0}), "[1, 2]",
                   json.dumps({"sources": ["examples/brick.png"], "bogus": 1}), json.dumps({**TINY, "seed": 1})])
        + "\n"
    )  # fmt: skip
    assert cli.main(["batch", str(jf), "--output-dir", str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "5 job(s) failed" in err and "Traceback" not in err
    failures = [json.loads(s) for s in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert [f["line"] for f in failures] == [2, 3, 4, 5, 6]
    assert all(f["reason"] and "\n" not in f["reason"] for f in failures)
    assert "not JSON" in failures[0]["reason"] and "bogus" in failures[3]["reason"]
    assert "sources" in failures[4]["reason"]
    assert sorted(p.name for p in (tmp_path / "out").glob("job_*")) == ["job_0001"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["jobs"], summary["done"], summary["failed"]) == (6, 1, 5)


def test_a_grouped_job_gives_what_its_own_synthesis_gives(tmp_path):
    jf = tmp_path / "jobs.jsonl"
    _write_jobs(jf, 3, mul=2.0)
    summary = jobs.run(jf, tmp_path / "out", progress=False)
    assert [g["lines"] for g in summary["groups"]] == [[2, 3, 4]]  # three exemplars, one program
    cfg = SynthConfig.from_dict(
        {"sources": ["examples/gravel.png"], "seed": 1, "optimizer": "lbfgs", "mul": 2.0, **TINY}
    )
    alone = synth.run(cfg, progress=False).images[0]
    grouped = image.load(tmp_path / "out" / "job_0003" / "output.png")
    assert np.abs(alone - grouped).max() <= 2 / 255
    manifest = json.loads((tmp_path / "out" / "job_0003" / "config.json").read_text())
    assert manifest["settings"]["sources"] == ["examples/gravel.png"] and manifest["mesh"]["padded_batch"] == 3
    assert not (tmp_path / "out" / "groups").exists()  # checkpoints go once their jobs are written


def test_killed_runner_resumes_and_never_reruns_a_finished_job(tmp_path):
    jf, out = tmp_path / "jobs.jsonl", tmp_path / "out"
    _write_jobs(jf, 12, missing_at=5)  # line 7 names a missing file
    cmd = [sys.executable, "-m", "jtex", "batch", str(jf), "--output-dir", str(out), "--max-group", "4", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while not list(out.glob("job_*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.name: os.stat(p / "result.json").st_mtime_ns for p in out.glob("job_*")}
    assert 0 < len(first) < 11, first  # killed midway
    assert all((out / name / "output.png").is_file() for name in first)  # whatever exists is whole
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 1 and "1 job(s) failed" in again.stderr
    done = sorted(p.name for p in out.glob("job_*"))
    assert len(done) == 11 and "job_0007" not in done
    assert all((out / n / "result.json").is_file() and (out / n / "output.png").is_file() for n in done)
    assert {n: os.stat(out / n / "result.json").st_mtime_ns for n in first} == first  # not run twice
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["skipped_finished"]) == (11, 1, len(first))
    assert [json.loads(s)["line"] for s in (out / "failures.jsonl").read_text().splitlines()] == [7]
    assert not list(out.glob(".job_*.partial"))
