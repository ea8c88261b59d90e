"""Small typed API results (4 experts, MoE layers 1 and 3) for the pure dashboard tests.

Built with the dashboard's own schemas from JSON shaped like the API's, so a schema change
that breaks parsing breaks these tests too.
"""

from __future__ import annotations

from ui import schemas as s

E = 4
LAYERS = (1, 3)


def measure(value: float | None, baseline: float | None) -> dict:
    return {"value": value, "baseline": baseline}


def route(layer: int, e1: int, e2: int, kept1: bool = True, kept2: bool = True) -> dict:
    return {
        "layer": layer,
        "experts": [e1, e2],
        "gates": [0.6 if kept1 else 0.0, 0.4 if kept2 else 0.0],
        "probs": [0.5, 0.3],
        "kept": [kept1, kept2],
        "entropy": 1.2,
    }


def token(position: int, piece: str | None, routes: list[dict], nll: float | None = 2.0) -> s.Token:
    return s.Token.model_validate(
        {
            "position": position,
            "token_id": 100 + position,
            "piece": piece,
            "nll": nll,
            "predicted": 7,
            "predicted_piece": "\u2581the",
            "routes": routes,
        }
    )


def tokens() -> list[s.Token]:
    """Three tokens: the second has its top-1 dropped at layer 1, the third its second choice."""
    return [
        token(0, "\u2581Hello", [route(1, 0, 1), route(3, 2, 3)]),
        token(1, "<script>", [route(1, 2, 0, kept1=False), route(3, 1, 0)]),
        token(2, "<0x0A>", [route(1, 3, 1, kept2=False), route(3, 0, 2)], nll=None),
    ]


def layer_load_stats(layer: int, loads: list[int]) -> s.LayerLoadStats:
    total = sum(loads)
    experts = [
        {
            "expert": e,
            "load": load,
            "share": measure(load / total, 1 / E),
            "chosen": [load, 0],
            "kept": [load, 0],
        }
        for e, load in enumerate(loads)
    ]
    return s.LayerLoadStats.model_validate(
        {
            "layer": layer,
            "load": {"layer": layer, "total": total, "experts": experts},
            "balance": balance_row(layer),
            "routing": routing_row(layer, 0.1, 0.3),
        }
    )


def balance_row(layer: int) -> dict:
    return {
        "layer": layer,
        "total": 100,
        "cv": measure(0.5, 0.0),
        "max_violation": measure(0.8, 0.0),
        "dead_experts": measure(1.0, 0.0),
        "load_entropy": measure(0.9, 1.0),
    }


def routing_row(layer: int, drop1: float, drop2: float) -> dict:
    return {
        "layer": layer,
        "tokens": 50,
        "drop_rate": measure((drop1 + drop2) / 2, 0.0),
        "drop_rate_by_rank": [measure(drop1, 0.0), measure(drop2, 0.0)],
        "router_entropy": measure(1.2, 1.386),
        "aux_loss": measure(1.1, 1.0),
        "z_loss": measure(3.0, 1.92),
    }


def balance_stats() -> s.BalanceStats:
    return s.BalanceStats.model_validate(
        {
            "balance": [balance_row(1), balance_row(3)],
            "routing": [routing_row(1, 0.1, 0.3), routing_row(3, 0.2, 0.6)],
        }
    )


def domain_specs() -> list[s.DomainSpecialization]:
    return [
        s.DomainSpecialization(
            layer=1, domain="code", tokens=10, counts=[9, 1, 5, 5], shares=[0.9, 0.1, 0.5, 0.5],
            baseline=0.5,
        ),
        s.DomainSpecialization(
            layer=1, domain="chat", tokens=0, counts=[0, 0, 0, 0], shares=[None] * 4, baseline=0.5
        ),
    ]  # fmt: skip
