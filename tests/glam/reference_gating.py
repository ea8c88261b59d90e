"""A loop-by-loop oracle of DESIGN.md's top-2 gating, written from the spec (tests only).

Plain Python over one token at a time, sharing nothing with `glam.routing`: no argmax over
masked logits, no cumulative sums. Each rule is the DESIGN.md step it cites.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-9  # step 3's epsilon


def _softmax(row: list[float]) -> list[float]:
    top = max(row)
    weights = [math.exp(x - top) for x in row]
    total = sum(weights)
    return [w / total for w in weights]


def _choices(probs: list[float]) -> tuple[int, int]:
    """Step 2: the most probable expert, then the best of the others (ties: lowest id)."""
    ranked = sorted(range(len(probs)), key=lambda e: (-probs[e], e))
    first = ranked[0]
    second = max((e for e in range(len(probs)) if e != first), key=lambda e: (probs[e], -e))
    return first, second


def _group(logits: np.ndarray, mask: np.ndarray, capacity: int) -> tuple[dict, float | None]:
    """One group (sequence): per-token lists of the routing fields, and its aux loss."""
    seq, experts = logits.shape
    probs = [_softmax([float(x) for x in logits[s]]) for s in range(seq)]  # step 1
    choices = [_choices(p) for p in probs]
    fields = {
        "expert": [list(c) for c in choices],
        "prob": [[probs[s][e] for e in choices[s]] for s in range(seq)],
        "kept": [[False, False] for _ in range(seq)],
        "slot": [[-1, -1] for _ in range(seq)],
        "gate": [[0.0, 0.0] for _ in range(seq)],
    }
    # Step 6, top-1: slots in sequence order; every valid top-1 takes the next one, kept
    # if that slot is below capacity. Padding (step 4) takes none.
    taken = [0] * experts
    for s in range(seq):
        if mask[s]:
            e = choices[s][0]
            if taken[e] < capacity:
                fields["kept"][s][0], fields["slot"][s][0] = True, taken[e]
            taken[e] += 1
    # Step 6, top-2: queued behind the kept top-1 assignments of the same expert.
    queue = [min(n, capacity) for n in taken]
    for s in range(seq):
        if mask[s]:
            e = choices[s][1]
            if queue[e] < capacity:
                fields["kept"][s][1], fields["slot"][s][1] = True, queue[e]
            queue[e] += 1
    # Steps 3 and 7: renormalised over the two choices, 0 where dropped.
    for s in range(seq):
        p1, p2 = fields["prob"][s]
        for rank, p in enumerate((p1, p2)):
            if fields["kept"][s][rank]:
                fields["gate"][s][rank] = p / (p1 + p2 + _EPS)
    # Step 8: E^2 * mean_e(share of valid tokens with top-1 e * mean prob of e).
    valid = [s for s in range(seq) if mask[s]]
    if not valid:
        return fields, None
    share = [sum(choices[s][0] == e for s in valid) / len(valid) for e in range(experts)]
    mean_prob = [sum(probs[s][e] for s in valid) / len(valid) for e in range(experts)]
    aux = experts**2 * sum(share[e] * mean_prob[e] for e in range(experts)) / experts
    return fields, aux


def reference_top2(logits: np.ndarray, mask: np.ndarray, capacity: np.ndarray) -> dict:
    """logits [G,S,E], mask [G,S] bool, capacity [G] -> expert, gate, prob, kept, slot
    ([G,S,2] arrays) and aux_loss (mean over the groups that have a valid token)."""
    groups = [_group(logits[g], mask[g], int(capacity[g])) for g in range(logits.shape[0])]
    out = {
        name: np.array([fields[name] for fields, _ in groups])
        for name in ("expert", "prob", "kept", "slot", "gate")
    }
    losses = [aux for _, aux in groups if aux is not None]
    out["aux_loss"] = sum(losses) / len(losses) if losses else 0.0
    return out
