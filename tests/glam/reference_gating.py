"""An independent, loop-by-loop numpy oracle of DESIGN.md's top-2 gating (tests only)."""

from __future__ import annotations

import numpy as np


def reference_top2(logits: np.ndarray, mask: np.ndarray, capacity: np.ndarray) -> dict:
    """logits [G,S,E], mask [G,S] bool, capacity [G] -> expert, gate, prob, kept, slot, aux."""
    groups, seq, experts = logits.shape
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    out = {k: np.zeros((groups, seq, 2)) for k in ("expert", "gate", "prob", "kept", "slot")}
    out["slot"][:] = -1
    aux = []
    for g in range(groups):
        e1 = probs[g].argmax(-1)
        rest = logits[g].copy()
        rest[np.arange(seq), e1] = -np.inf
        e2 = rest.argmax(-1) if experts > 1 else e1
        p1 = probs[g, np.arange(seq), e1]
        p2 = probs[g, np.arange(seq), e2] if experts > 1 else np.zeros(seq)
        g1, g2 = p1 / (p1 + p2 + 1e-9), p2 / (p1 + p2 + 1e-9)
        fill = np.zeros(experts, int)
        kept1 = np.zeros(seq, bool)
        for s in range(seq):  # top-1 first, in sequence order
            if mask[g, s]:
                if fill[e1[s]] < capacity[g]:
                    kept1[s] = True
                    out["slot"][g, s, 0] = fill[e1[s]]
                # every valid top-1 assignment advances its queue (exclusive cumsum)
                fill[e1[s]] += 1
        fill = np.array([kept1[(e1 == e) & mask[g]].sum() for e in range(experts)])
        kept2 = np.zeros(seq, bool)
        for s in range(seq):  # then top-2, behind the kept top-1 of the same expert
            if mask[g, s]:
                if fill[e2[s]] < capacity[g]:
                    kept2[s] = True
                    out["slot"][g, s, 1] = fill[e2[s]]
                fill[e2[s]] += 1
        out["expert"][g] = np.stack([e1, e2], -1)
        out["prob"][g] = np.stack([p1, p2], -1)
        out["kept"][g] = np.stack([kept1, kept2], -1)
        out["gate"][g] = np.stack([g1 * kept1, g2 * kept2], -1)
        n = mask[g].sum()
        if n:
            frac = np.bincount(e1[mask[g]], minlength=experts) / n
            meanprob = probs[g][mask[g]].mean(0)
            aux.append(experts**2 * np.mean(frac * meanprob))
    out["aux_loss"] = float(np.mean(aux)) if aux else 0.0
    out["kept"] = out["kept"].astype(bool)
    return out
