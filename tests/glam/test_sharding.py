"""Expert parallelism on 8 forced host devices equals the single-device model."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sharded_forward_equals_single_device():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("sharded_forward.py"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["devices"] == 8
    assert report["expert_shard_rows"] == 2  # 8 experts over an expert axis of 4
    assert report["shape"] == [3, 24, 97]
    assert report["experts_equal"] and report["kept_equal"]
    assert report["logits_max_diff"] < 1e-4
    assert report["gate_max_diff"] < 1e-5
    assert report["aux_max_diff"] < 1e-5
    assert report["nll_max_diff"] < 1e-4
