"""A batch of independent problems sharded over the local devices.

Every jtex objective is per image and vmapped over the batch, so the batch axis
is the one to split: the images, their targets and knobs, and a device
optimiser's state are laid out with a ``NamedSharding`` over a one-axis
``Mesh`` (``"batch"``), the VGG params and other shared arguments replicated,
and ``jax.jit`` partitions the vmapped program (GSPMD): each device runs its
share, nothing but the batch's total loss crosses devices.

An animation (one element of F coupled frames) shards its frames instead:
over the largest device count that divides F, the frame axis of the images
split and everything else left for XLA to place; the inter-frame term then
reads neighbouring frames across devices.

A batch that is not a multiple of the device count is padded with copies of its
last element and trimmed after: padded elements are independent problems whose
results are dropped, so they change no real element. The plan uses as few
devices as give the same per-device batch (10 images on 8 devices: 5 devices of
2, no padding). A batch of 1, or a single device, is left alone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

AXIS = "batch"
NAMES = ("batch", "frames")  # what the mesh axis splits: the batch (axis 0) or an animation's frames (axis 1)


class Plan(NamedTuple):
    n: int  # real batch
    padded: int  # batch as laid out (a multiple of len(devices))
    devices: tuple
    axis: int = 0  # 0: batch elements; 1: the frames of one element

    @property
    def per_device(self) -> int:
        """Batch elements per device (a frame plan keeps its one element whole on every device)."""
        return self.padded // len(self.devices) if self.axis == 0 else self.n

    def mesh(self) -> jax.sharding.Mesh:
        return jax.sharding.Mesh(np.array(self.devices), (AXIS,))

    def describe(self) -> dict:
        """What config.json records."""
        return {
            "axes": {NAMES[self.axis]: len(self.devices)},
            "devices": len(self.devices),
            "platform": self.devices[0].platform,
            "per_device_batch": self.per_device,
            "padded_batch": self.padded,
        }


def plan(shape: tuple, devices=None) -> Plan | None:
    """How images of ``shape`` (B, F, H, W, 3) or (B, H, W, 3) are laid out over ``devices``
    (default: the local ones); None: on one device."""
    devs = list(jax.local_devices() if devices is None else devices)
    n = int(shape[0])
    if len(devs) < 2:
        return None
    if n < 2:
        frames = int(shape[1]) if len(shape) == 5 else 1
        used = max(k for k in range(1, min(frames, len(devs)) + 1) if frames % k == 0)
        return Plan(n, n, tuple(devs[:used]), axis=1) if used > 1 else None
    per = -(-n // len(devs))
    used = -(-n // per)
    return Plan(n, used * per, tuple(devs[:used]))


def describe(shape: tuple) -> dict:
    """The mesh images of ``shape`` run on, for the run manifest."""
    p = plan(shape)
    if p is None:
        dev, n = jax.local_devices()[0], int(shape[0])
        return {"axes": {}, "devices": 1, "platform": dev.platform, "per_device_batch": n, "padded_batch": n}
    return p.describe()


def lay_out(x, batched, shared, state, p: Plan | None):
    """The optimiser's arguments as ``p`` lays them out (unchanged without a plan; None stays None)."""
    if p is None:
        return x, batched, shared, state
    if p.axis == 1:  # the frames of x split; XLA places the rest
        spec = jax.sharding.NamedSharding(p.mesh(), jax.sharding.PartitionSpec(None, AXIS))
        return (None if x is None else jax.device_put(x, spec)), batched, shared, state
    x, batched, state = (None if t is None else shard(t, p) for t in (x, batched, state))
    return x, batched, (None if shared is None else replicate(shared, p)), state


def pad(tree: Any, p: Plan) -> Any:
    """Every leaf's leading axis from ``p.n`` to ``p.padded``: copies of the last element appended."""
    extra = p.padded - p.n
    if extra == 0:
        return tree

    def one(a):
        if isinstance(a, np.ndarray):
            return np.concatenate([a, np.repeat(a[-1:], extra, axis=0)])
        return jax.numpy.concatenate([a, jax.numpy.repeat(a[-1:], extra, axis=0)])

    return jax.tree.map(one, tree)


def trim(tree: Any, p: Plan | None) -> Any:
    """The real elements of a padded tree."""
    if p is None or p.padded == p.n:  # (frame plans never pad)
        return tree
    return jax.tree.map(lambda a: a[: p.n], tree)


def shard(tree: Any, p: Plan) -> Any:
    """Pad and lay the leading axis of every leaf out over the plan's devices."""
    spec = jax.sharding.NamedSharding(p.mesh(), jax.sharding.PartitionSpec(AXIS))
    return jax.device_put(pad(tree, p), spec)


def replicate(tree: Any, p: Plan) -> Any:
    """Every leaf whole on each of the plan's devices."""
    spec = jax.sharding.NamedSharding(p.mesh(), jax.sharding.PartitionSpec())
    return jax.device_put(tree, spec)
