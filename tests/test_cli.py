"""The command line: flags, one-line errors without tracebacks, the weights tool."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jtex import cli

from conftest import EXAMPLES, ROOT

BRICK = str(EXAMPLES / "brick.png")
# conftest.SMALL_SYNTH as command-line flags.
SMALL_ARGS = ["-s", BRICK, "-sw", "128", "-ow", "64", "-oh", "64", "-o", "2", "-p", "same", "-l", "pool1", "relu2_1"]


def run_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["-s", "missing.png"], "missing.png: no such file"),
        (["-s", str(ROOT / "pyproject.toml")], "not an image"),
        (["-s", BRICK, "-sw", "64"], "need at least"),
        (["-s", BRICK, "-l", "relu9_1"], "unknown layer"),
        (["-s", BRICK, "-o", "2", "--if-octaves", "3"], "--if-octaves 3 must be between 1 and --octaves"),
        (["-s", BRICK, "--init", "nowhere.png"], "--init"),
        (["-s", BRICK, "-o", "12"], "--octaves 12 is too many"),
        (["-s", BRICK, "-o", "1000000"], "at most 9"),
        (["-s", BRICK, "-o", "8"], "need at least 4477 px"),
        (["-s", BRICK, "--gram-tile", "-1"], "--gram-tile must be 0 (off) or a tile side"),
        (["-s", BRICK, "--coarse-to-fine-above", "-5"], "--coarse-to-fine-above must be 0 (never)"),
    ],
)
def test_bad_input_is_one_line_exit_1_no_traceback(tmp_path, args, pattern):
    r = run_cli(*args, "--output-dir", str(tmp_path / "out"))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("jtex: error:"), r.stderr
    assert pattern in err[0]


def test_empty_and_truncated_source(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    data = (EXAMPLES / "brick.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 3])
    for path, pattern in ((empty, "empty"), (cut, "truncated")):
        r = run_cli("-s", str(path), "--output-dir", str(tmp_path / "o"))
        assert r.returncode == 1 and pattern in r.stderr and "Traceback" not in r.stderr


def test_synth_flags_reach_the_config(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(
        [
            "synth",
            "-s",
            BRICK,
            "-sw",
            "128",
            "-ow",
            "64",
            "-oh",
            "48",
            "-o",
            "2",
            "-l",
            "2",
            "relu2_1",
            "-m",
            "4",
            "-n",
            "2",
            "-p",
            "same",
            "--gram",
            "gatys",
            "--layer-weights",
            "1",
            "2",
            "--optimizer",
            "adam",
            "--lr",
            "0.05",
            "--seed",
            "7",
            "--quiet",
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["layers"] == [2, "relu2_1"] and settings["octaves"] == 2 and settings["gram"] == "gatys"
    assert settings["optimizer"] == "adam" and settings["seed"] == 7 and settings["layer_weights"] == [1.0, 2.0]
    assert Image.open(out / "output.png").size == (64, 48)
    assert "wrote" in capsys.readouterr().out


def test_default_output_dir_depends_on_settings():
    a = cli.config_from_args(cli.synth_parser().parse_args(["-m", "3"]))
    b = cli.config_from_args(cli.synth_parser().parse_args(["-m", "4"]))
    assert a.sources == (str(EXAMPLES / "brick.png"),)
    assert cli.default_output_dir(a) != cli.default_output_dir(b)
    again = cli.config_from_args(cli.synth_parser().parse_args(["-m", "3"]))  # parsed anew: same folder
    assert again is not a and cli.default_output_dir(again) == cli.default_output_dir(a)


def test_weights_commands(capsys, tmp_path):
    assert cli.main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "vgg19-normalized" in out and "vgg16" in out
    assert cli.main(["weights", "verify"]) == 0
    info = json.loads(capsys.readouterr().out.split("\njtex:")[0])
    assert info["source_ok"] and info["source_sha256"].startswith("804ca283")
    from jtex import weights

    src = weights.source_path("vgg19-normalized")
    target = tmp_path / "mine.npz"
    assert cli.main(["weights", "convert", "--from", str(src), "--out", str(target)]) == 0
    assert target.is_file()
    assert cli.main(["weights", "convert", "--from", str(tmp_path / "nope.pth")]) == 1
    assert "no such weights file" in capsys.readouterr().err


def test_features_summary(capsys):
    assert cli.main(["features", BRICK, "--width", "64", "--layers", "relu1_1", "pool2"]) == 0
    out = capsys.readouterr().out
    assert "relu1_1" in out and "pool2" in out and "804ca2835ecf7539" in out


def test_resume_after_kill(tmp_path):
    """Kill a run after its first checkpoint; the rerun completes from it and
    gives the same pixels as an uninterrupted run (device L-BFGS is exact)."""
    import signal
    import time

    args = [
        sys.executable,
        str(ROOT / "run.py"),
        *SMALL_ARGS,
        "-m",
        "30",
        "-n",
        "5",
        "--optimizer",
        "lbfgs",
        "--quiet",
    ]
    killed = tmp_path / "killed"
    p = subprocess.Popen(args + ["--output-dir", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((killed / "checkpoints").glob("1[05]")):
        time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (killed / "output.png").exists(), "the run finished before it could be killed"
    assert subprocess.run(args + ["--output-dir", str(killed)], capture_output=True).returncode == 0
    whole = tmp_path / "whole"
    assert subprocess.run(args + ["--output-dir", str(whole)], capture_output=True).returncode == 0
    a = np.asarray(Image.open(killed / "output.png"))
    b = np.asarray(Image.open(whole / "output.png"))
    np.testing.assert_array_equal(a, b)
    iters = [json.loads(line)["iteration"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert iters == list(range(1, 31))


def test_help_and_early_errors_do_not_load_jax():
    # `jtex --help` and mistakes in the command line answer without importing JAX (fast start).
    code = (
        "import sys; from jtex import cli\n"
        "for argv in (['-s', 'missing.png'], ['-s', 'examples/brick.png', '-l', 'relu9_9'], ['--mul', 'x']):\n"
        "    try:\n        cli.main(argv)\n    except SystemExit:\n        pass\n"
        "print('jax loaded' if 'jax' in sys.modules else 'no jax')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.stdout.strip().endswith("no jax"), r.stdout + r.stderr
    assert "no such file" in r.stderr and "unknown layer" in r.stderr


def test_second_process_on_a_busy_folder_exits_1_and_the_first_finishes(tmp_path):
    import time

    out = tmp_path / "run"
    args = [
        *SMALL_ARGS,
        "-m",
        "300",
        "--tol",
        "0",
        "--quiet",
        "--output-dir",
        str(out),
    ]
    first = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "config.json").is_file() and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        second = run_cli(*args)
        assert first.poll() is None, "the first run ended before the second could try"
        assert second.returncode == 1 and "Traceback" not in second.stderr
        err = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(err) == 1 and "in use by a running jtex (pid" in err[0], second.stderr
    finally:
        assert first.wait(timeout=300) == 0, first.stderr.read()
    assert (out / "result.json").is_file() and (out / "output.png").is_file()


def _restarts(env_extra: dict) -> list[str]:
    """Lines printed by a process that calls the entry points' restart, with a clean environment plus env_extra."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "JTEX_HUGEPAGES")} | env_extra
    code = (
        "import os, sys\nprint('start', flush=True)\nfrom jtex import runtime\n"
        "runtime.restart_with_hugepages()\nprint('tunables', os.environ.get('GLIBC_TUNABLES'))"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    return r.stdout.splitlines()


def test_the_command_restarts_once_with_huge_pages():
    """glibc's huge-page tunable (jtex.runtime): added once, the user's tunables kept, off with JTEX_HUGEPAGES=0."""
    from jtex import runtime

    if runtime.hugepage_env() is None and "glibc.malloc.hugetlb" not in __import__("os").environ.get(
        "GLIBC_TUNABLES", ""
    ):
        pytest.skip("no glibc >= 2.35 with transparent huge pages here")
    assert _restarts({}) == ["start", "start", "tunables glibc.malloc.hugetlb=1"]
    mine = "glibc.malloc.check=0"
    assert _restarts({"GLIBC_TUNABLES": mine})[-1] == f"tunables {mine}:glibc.malloc.hugetlb=1"
    assert _restarts({"JTEX_HUGEPAGES": "0"}) == ["start", "tunables None"]
    assert _restarts({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) == ["start", "tunables glibc.malloc.hugetlb=0"]
