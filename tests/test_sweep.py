"""Parameter sweeps (jtex.sweeps, jtex sweep): one compiled program per shape, run folders, tables, resume."""

import csv
import json
import logging

import jax
import numpy as np
import pytest

import jtex
from jtex import image, sweeps, synth, vgg
from jtex.cli import main
from jtex.config import SynthConfig
from jtex.errors import JtexError

from conftest import EXAMPLES

BRICK = str(EXAMPLES / "brick.png")
TINY = vgg.init_params(jax.random.key(0), "vgg19", width=1 / 16)
BASE = dict(output_width=32, output_height=32, padding="same", octaves=2, layers=("pool1", "relu2_1"),
            source_width=64, max_iter=8, save_every=4)  # fmt: skip


def _sweep(out, grid, **kw):
    return jtex.sweep(BRICK, grid, out, params=TINY, metrics=False, progress=False, **{**BASE, **kw})


def test_parse_grid():
    g = sweeps.parse_grid(["mul=0.5,1", "layer_weights=1,0;linear", "loss=gram=1,swd=0.5;emd", "octaves=1,2"])
    assert g == {
        "mul": [0.5, 1.0],
        "layer_weights": [(1.0, 0.0), "linear"],
        "loss": [(("gram", 1.0), ("swd", 0.5)), (("emd", 1.0),)],
        "octaves": [1, 2],
    }
    for bad, msg in [("nope=1", "not a setting"), ("mul", "KEY=V1"), ("octaves=x", "not a valid int"),
                     ("batch=1,2", "not a setting")]:  # fmt: skip
        with pytest.raises(JtexError, match=msg):
            sweeps.parse_grid([bad])
    with pytest.raises(JtexError, match="twice"):
        sweeps.parse_grid(["mul=1", "mul=2"])


def test_points_are_independent_syntheses_written_as_run_folders(tmp_path):
    rows = _sweep(tmp_path / "s", {"mul": [0.5, 2.0], "seed": [0, 3]})
    assert [(r["mul"], r["seed"]) for r in rows] == [(0.5, 0), (0.5, 3), (2.0, 0), (2.0, 3)]
    with open(tmp_path / "s" / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4 and float(table[3]["final_loss"]) == pytest.approx(rows[3]["final_loss"])
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["rows"] == rows
    sheet = image.load(tmp_path / "s" / "sheet.png")
    assert sheet.shape[0] > 2 * 32 and sheet.shape[1] > 2 * 32
    # Point 3 (mul 2, seed 3) is the synthesis those settings give alone, with its own line search.
    alone = synth.run(SynthConfig(sources=(BRICK,), optimizer="lbfgs", mul=2.0, seed=3, **BASE), progress=False,
                      params=TINY)  # fmt: skip
    mine = image.load(tmp_path / "s" / "point_003" / "output.png")
    assert np.abs(mine - alone.images[0]).max() <= 2 / 255
    cfg = json.loads((tmp_path / "s" / "point_003" / "config.json").read_text())["settings"]
    assert cfg["mul"] == 2.0 and cfg["seed"] == 3 and cfg["batch"] == 1
    metrics = [json.loads(line) for line in (tmp_path / "s" / "point_003" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 8 and metrics[-1]["loss"] == pytest.approx(rows[3]["final_loss"], rel=1e-5)
    # Different points, different images.
    others = [image.load(tmp_path / "s" / f"point_{i:03d}" / "output.png") for i in range(3)]
    assert all(np.abs(o - mine).mean() > 1e-3 for o in others)


def _objective_compiles(caplog, out, n):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jax"):
        jax.config.update("jax_log_compiles", True)
        try:
            _sweep(out, {"mul": [1.0 + i for i in range(n)], "tv_weight": [0.0]}, save_every=0)
        finally:
            jax.config.update("jax_log_compiles", False)
    names = ("jit(step)", "jit(init)", "jit(value_and_grad)", "jit(per_image)")
    return sum(1 for r in caplog.records if r.getMessage().startswith("Compiling") and any(n in r.getMessage()
                                                                                          for n in names))  # fmt: skip


def test_more_points_do_not_compile_more(tmp_path, caplog):
    few = _objective_compiles(caplog, tmp_path / "a", 2)
    many = _objective_compiles(caplog, tmp_path / "b", 5)
    assert few == many >= 1


def test_shape_keys_loop_in_groups_and_a_rerun_resumes(tmp_path, capsys):
    rows = _sweep(tmp_path / "s", {"octaves": [1, 2], "loss": ["gram=1", "emd=1"]})
    assert "octaves change shapes" in capsys.readouterr().err
    assert [r["group"] for r in rows] == [0, 0, 1, 1]
    before = (tmp_path / "s" / "sweep.csv").read_text()
    stamp = (tmp_path / "s" / "point_002" / "output.png").stat().st_mtime_ns
    again = _sweep(tmp_path / "s", {"octaves": [1, 2], "loss": ["gram=1", "emd=1"]})
    assert (tmp_path / "s" / "sweep.csv").read_text() == before and again == rows
    assert (tmp_path / "s" / "point_002" / "output.png").stat().st_mtime_ns == stamp
    # Another grid in the same folder is not answered with the old points: its group's checkpoints differ.
    with pytest.raises(JtexError, match="other settings"):
        _sweep(tmp_path / "s", {"octaves": [1, 2], "loss": ["gram=1", "swd=1"]})
    other = _sweep(tmp_path / "s", {"octaves": [1, 2], "loss": ["gram=1", "swd=1"]}, overwrite=True)
    assert other[1]["final_loss"] != rows[1]["final_loss"]
    assert other[0]["final_loss"] == pytest.approx(rows[0]["final_loss"], rel=1e-3)


def test_sweep_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(JtexError, match="share a line search"):
        _sweep(tmp_path / "s", {"mul": [1, 2]}, optimizer="lbfgs-b")
    with pytest.raises(JtexError, match="sweep point octaves=9"):
        _sweep(tmp_path / "s", {"octaves": [1, 9]})


def test_cli_sweep_on_the_real_network(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["sweep", "-s", BRICK, "-ow", "32", "-oh", "32", "-o", "1", "-l", "pool1", "-p", "same", "-sw", "64",
            "-m", "3", "--quiet", "--grid", "adam_lr=1", "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 1 and "not a setting" in capsys.readouterr().err
    args[-4:-2] = ["--grid", "loss=gram=1;swd=1"]
    assert main(args + ["--grid", "lr=0.01,0.05", "--optimizer", "adam"]) == 0
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert len(rows) == 4 and {"swd_s1", "colour", "final_loss"} <= set(rows[0])
    assert len(list(out.glob("point_*/output.png"))) == 4
