"""Expert parallelism: a ("data", "expert") mesh, expert weights split over "expert".

Parameters carry logical axis names from where they are created (glam/layers.py); this
module is the one place that maps them onto mesh axes. The batch is split over "data";
XLA (GSPMD) inserts the all-to-all traffic between token and expert layouts.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -c \
      "from glam import sharding; print(sharding.make_mesh(expert=4))"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from glam.model import Glam

# Logical axis name -> mesh axis. Only experts are split; everything else is replicated,
# which is what expert parallelism means at the sizes that run here.
LOGICAL_TO_MESH: dict[str, str | None] = {
    "expert": "expert",
    "embed": None,
    "mlp": None,
    "heads": None,
    "vocab": None,
}


def make_mesh(*, expert: int | None = None, data: int | None = None) -> Mesh:
    """A 2-D mesh over all local devices. By default every device goes to `expert`."""
    count = jax.device_count()
    if expert is None:
        expert = count // (data or 1)
    if data is None:
        data = count // expert
    if data * expert != count:
        raise ValueError(f"mesh data={data} x expert={expert} does not use {count} devices")
    return jax.make_mesh((data, expert), ("data", "expert"), axis_types=(AxisType.Auto,) * 2)


def _mesh_spec(logical: tuple[str | None, ...] | None) -> PartitionSpec:
    if not logical:
        return PartitionSpec()
    return PartitionSpec(*(LOGICAL_TO_MESH.get(name) if name else None for name in logical))


def shard_model(model: Glam, mesh: Mesh) -> Glam:
    """Place the model's parameters on `mesh` (in place) and make `forward` use it."""
    num_experts = model.config.num_experts
    if num_experts and num_experts % mesh.shape["expert"]:
        raise ValueError(
            f"{num_experts} experts cannot be split over an expert axis of "
            f"{mesh.shape['expert']} devices"
        )
    state = nnx.state(model)
    specs = jax.tree.map(
        lambda variable: _mesh_spec(variable.get_metadata().get("out_sharding")),
        state,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )
    shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs)
    nnx.update(model, jax.device_put(state, shardings))
    model.mesh = mesh
    return model


def run_sharded(mesh: Mesh, fn: Callable[..., Any], state: Any, *batch_args: Any) -> Any:
    """Call `fn(state, tokens, mask, ablated, capacity)` with the batch split over "data"."""
    tokens, mask, ablated, capacity = batch_args
    rows = NamedSharding(mesh, PartitionSpec("data", None))
    with jax.set_mesh(mesh):
        return fn(
            state,
            jax.device_put(tokens, rows),
            jax.device_put(mask, rows),
            jax.device_put(ablated, NamedSharding(mesh, PartitionSpec())),
            jax.device_put(capacity, NamedSharding(mesh, PartitionSpec("data"))),
        )
