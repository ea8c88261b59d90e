"""The chunked tied-softmax cross-entropy against log_softmax over the full logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glam.losses import tied_softmax_cross_entropy


def _reference(x_nd, embed_vd, targets_n, weights_n):
    log_probs = jax.nn.log_softmax(x_nd @ embed_vd.T, axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets_n[:, None], axis=-1)[:, 0]
    return jnp.sum(nll * weights_n) / jnp.sum(weights_n)


@pytest.mark.parametrize(("rows", "chunk"), [(1000, 128), (64, 64), (7, 512)])
def test_loss_and_gradients_match_the_full_softmax(rows: int, chunk: int) -> None:
    keys = jax.random.split(jax.random.key(rows), 4)
    x = jax.random.normal(keys[0], (rows, 16))
    embed = jax.random.normal(keys[1], (300, 16))
    targets = jax.random.randint(keys[2], (rows,), 0, 300)
    weights = (jax.random.uniform(keys[3], (rows,)) > 0.2).astype(jnp.float32).at[0].set(0.0)

    def chunked(x, embed):
        return tied_softmax_cross_entropy(x, embed, targets, weights, chunk)

    def reference(x, embed):
        return _reference(x, embed, targets, weights)

    loss, grads = jax.jit(jax.value_and_grad(chunked, argnums=(0, 1)))(x, embed)
    want_loss, want_grads = jax.value_and_grad(reference, argnums=(0, 1))(x, embed)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for got, want in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    # Rows of weight 0 contribute no gradient.
    assert float(jnp.max(jnp.abs(grads[0][weights == 0]))) == 0.0


def test_the_loss_alone_needs_no_gradient_pass() -> None:
    x = jnp.ones((10, 4))
    embed = jnp.eye(8, 4)
    targets = jnp.arange(10) % 8
    weights = jnp.ones((10,))
    got = tied_softmax_cross_entropy(x, embed, targets, weights, 4)
    np.testing.assert_allclose(got, _reference(x, embed, targets, weights), rtol=1e-6)
