"""Parameter counts from shapes, against the GLaM paper's size table."""

import json

import pytest

from glam.cli import main
from glam.config import PRESETS, GlamConfig
from glam.params import count_params


@pytest.mark.parametrize(
    ("preset", "total", "activated"),
    [
        ("glam-1.7b-64e", 27e9, None),
        ("glam-1.7b-128e", 53e9, None),
        ("glam-1.7b-256e", 105e9, None),
        ("glam-8b-64e", 143e9, None),
        ("glam-64b-64e", 1.2e12, 96.6e9),
    ],
)
def test_counts_agree_with_the_paper(preset, total, activated):
    counts = count_params(GlamConfig.preset(preset))
    # The paper prints 2-3 significant figures; 1.16T is its "1.2T".
    assert counts.total == pytest.approx(total, rel=0.035)
    if activated:
        assert counts.activated == pytest.approx(activated, rel=0.001)


def test_counts_follow_from_the_shapes():
    cfg = GlamConfig.preset("glam-tiny")
    d, f, e, v, n, h = cfg.d_model, cfg.d_ff, cfg.num_experts, cfg.vocab_size, 4, 32
    attention = 4 * d * n * h + cfg.rel_pos_buckets * n
    norms = 2 * d
    dense_block = attention + norms + 3 * d * f
    moe_block = attention + norms + d * e + e * 2 * d * f
    total = v * d + d + 2 * dense_block + 2 * moe_block
    counts = count_params(cfg)
    assert counts.total == total
    assert counts.activated == total - 2 * (e - 2) * 2 * d * f


def test_params_cli_prints_json(capsys):
    assert main(["params", "glam-64b-64e", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["preset"] == "glam-64b-64e"
    assert result["activated"] == count_params(GlamConfig.preset("glam-64b-64e")).activated


def test_params_cli_unknown_preset_is_one_line_error(capsys):
    assert main(["params", "glam-9000b"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown preset 'glam-9000b'" in err


def test_every_preset_has_its_name():
    assert all(cfg.name == name for name, cfg in PRESETS.items())
    assert {"glam-tiny", "glam-small", "glam-137b", "glam-0.1b-64e"} <= set(PRESETS)
