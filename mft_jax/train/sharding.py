"""Embarrassingly parallel axes sharded over all devices (of every process, in a ``jax.distributed`` job).

Single neurons against a fixed background are independent, so the foreground trainer splits
its particle axis (axis 0 of ``a`` (M, C) and ``w`` (M, d)) over a one-axis ``Mesh`` of every
device and replicates the background data. ``M`` must be a multiple of the device count.
Network seeds (``train.joint``) and MCMC chains (``theory.samplers.mcmc``) are split the same way by
``spread``, whenever their number divides evenly over the devices (else they stay on one device).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mft_jax.errors import ConfigError

NEURON_AXIS = "neurons"


def neuron_mesh(devices=None) -> Mesh:
    """A one-dimensional mesh named ``"neurons"`` over ``devices`` (default: ``jax.devices()``)."""
    return Mesh(np.asarray(jax.devices() if devices is None else devices), (NEURON_AXIS,))


def check_num_neurons(num_neurons: int, mesh: Mesh) -> int:
    """``num_neurons`` if it is a positive multiple of the mesh size, else a ``ConfigError`` saying which is."""
    devices = mesh.devices.size
    if isinstance(num_neurons, bool) or not isinstance(num_neurons, (int, np.integer)) or num_neurons < 1:
        raise ConfigError(f"num_neurons must be a positive integer, got {num_neurons!r}")
    if num_neurons % devices:
        lower, upper = (num_neurons // devices) * devices, -(-num_neurons // devices) * devices
        nearest = f"{lower} or {upper}" if lower else f"{upper}"
        raise ConfigError(
            f"num_neurons = {num_neurons} must be a multiple of the {devices} devices the neuron axis is sharded over; use {nearest}"
        )
    return int(num_neurons)


def put_global(tree, sharding: NamedSharding):
    """``jax.device_put(tree, sharding)``, also for a mesh spanning several processes (``jax.distributed``): there
    every process holds the same host values (same keys, same data) and contributes the shards on its own devices."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def leaf(value):
        if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(leaf(jax.random.key_data(value)), impl=jax.random.key_impl(value))
        host = np.asarray(value)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(leaf, tree)


def shard_neurons(tree, mesh: Mesh):
    """Put every leaf of ``tree`` on ``mesh`` with its leading (neuron) axis split over the devices."""
    return put_global(tree, NamedSharding(mesh, PartitionSpec(NEURON_AXIS)))


def replicate(tree, mesh: Mesh):
    """Put every leaf of ``tree`` (the background data, PRNG keys) whole on each device of ``mesh``."""
    return put_global(tree, NamedSharding(mesh, PartitionSpec()))


def spread(tree, size: int):
    """Split the leading axis (of length ``size``) of every leaf of ``tree`` over all devices (every process's).

    Returns ``tree`` unchanged on one device or when ``size`` is not a multiple of the device count.
    Jitted code that maps over that axis (``vmap`` over seeds or chains) then runs on every device.
    """
    devices = jax.devices()
    if len(devices) == 1 or size % len(devices):
        return tree
    mesh = Mesh(np.asarray(devices), ("batch",))
    return put_global(tree, NamedSharding(mesh, PartitionSpec("batch")))
