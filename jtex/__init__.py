"""jtex: neural texture synthesis in JAX.

Conventions, said once: images are NHWC float32 RGB in [0, 1]; VGG params are
plain nested dicts named as the original network (``conv1_1`` ...) with HWIO
kernels; every function that draws random numbers takes an explicit ``key``.
"""

from jtex import runtime as _runtime
from jtex.errors import JtexError as JtexError

_runtime.xla_cpu_defaults()  # before JAX starts its CPU backend: see jtex.runtime

__version__ = "0.1.0"


def synthesize(sources, **config):
    """Synthesise textures like ``sources``: see :func:`jtex.synth.synthesize`."""
    from jtex.synth import synthesize as _synthesize

    return _synthesize(sources, **config)


def sweep(sources, grid, output_dir, **config):
    """Run a grid of settings, shape-preserving keys in one compiled program: see :func:`jtex.sweeps.sweep`."""
    from jtex.sweeps import sweep as _sweep

    return _sweep(sources, grid, output_dir, **config)


def batch(jobs, output_dir, **defaults):
    """Run many syntheses (a JSONL file or a list of setting dicts), batched, resumable: :func:`jtex.jobs.run`."""
    from jtex.jobs import run as _run

    progress = defaults.pop("progress", True)
    max_group = defaults.pop("max_group", 16)
    return _run(jobs, output_dir, progress=progress, max_group=max_group, defaults=defaults)
