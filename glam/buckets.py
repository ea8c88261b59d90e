"""Length buckets: padded shapes that let inputs of many lengths share one compiled program.

jax.jit compiles one program per input shape. Padding a length up to the next power of two
(at least `MIN_LENGTH_BUCKET`, at most the model's max_len) bounds the programs to about
log2(max_len) per kind of call, whatever lengths arrive.
"""

from __future__ import annotations

import math

MIN_LENGTH_BUCKET = 16  # below this, padding costs nothing measurable and saves compiles


def length_bucket(length: int, max_len: int) -> int:
    """The padded length for `length` tokens: a power of two in [16, max_len]."""
    return min(max_len, max(MIN_LENGTH_BUCKET, 1 << math.ceil(math.log2(max(length, 1)))))
