"""Shared test settings and fixtures: JAX on the CPU, a small real corpus and tokenizer, Chromium.

Chromium comes from Debian (`apt-get install -y chromium`), driven by the `playwright`
package. Without it the browser tests are skipped, except in CI (CI=true), where they are
mandatory and fail instead.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the run, inherited by the API and dashboard processes
# the tests start: each of them would otherwise compile the same small models' programs again.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _jax_cache = tempfile.mkdtemp(prefix="glam-test-jax-cache-")
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _jax_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

from glam.config import GlamConfig  # noqa: E402
from glam.corpus import read_corpus  # noqa: E402
from glam.tokenizer import Tokenizer, train_tokenizer  # noqa: E402

# Real text in three clearly different domains (no filler): enough for a 400-piece
# tokenizer and a few training steps.
_SAMPLES = {
    "code": [
        "def add(a, b):\n    return a + b\n",
        "for i in range(10):\n    print(i * i)\n",
        "class Stack:\n    def __init__(self):\n        self.items = []\n",
        "import os\nprint(os.path.join('a', 'b'))\n",
        "with open('f.txt') as f:\n    data = f.read()\n",
        "try:\n    x = int(s)\nexcept ValueError:\n    x = 0\n",
    ],
    "prose-en": [
        "The quick brown fox jumps over the lazy dog near the river bank.",
        "A mixture of experts routes every token to two of its feed-forward networks.",
        "Researchers study which experts specialise in code and which in languages.",
        "The weather was cold, so they stayed inside and read books all afternoon.",
        "Sparse models activate only a fraction of their parameters for each token.",
        "She walked to the market to buy bread, cheese and a basket of apples.",
    ],
    "chat-ja": [
        "こんにちは。お元気ですか？元気です、ありがとう。",
        "今日はいい天気ですね。散歩に行きましょう。",
        "日本語を勉強しています。難しいですが楽しいです。",
        "駅はどこですか？まっすぐ行って右に曲がってください。",
        "お腹が空きました。ラーメンを食べに行きませんか。",
        "週末は何をしますか？友達と映画を見ます。",
    ],
}


@pytest.fixture(scope="session")
def corpus_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    with path.open("w") as f:
        for domain, texts in _SAMPLES.items():
            for i, text in enumerate(texts * 3):
                split = "validation" if i % 6 == 0 else "train"
                f.write(json.dumps({"text": f"{text} {i}", "domain": domain, "split": split}))
                f.write("\n")
    return path


@pytest.fixture(scope="session")
def tokenizer(corpus_path, tmp_path_factory) -> Tokenizer:
    out = tmp_path_factory.mktemp("tok")
    return Tokenizer.load(train_tokenizer(read_corpus(corpus_path), out, vocab_size=400))


@pytest.fixture(scope="session")
def small_config(tokenizer) -> GlamConfig:
    return GlamConfig(
        name="test-train",
        vocab_size=tokenizer.vocab_size,
        d_model=32,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        head_dim=16,
        num_experts=4,
        capacity_factor=2.0,
        max_len=128,
    )


CHROMIUM = Path(os.environ.get("GLAMLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests are mandatory in CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh tab with its own cookies, so its own dashboard session."""
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    yield context.new_page()
    context.close()


@pytest.fixture
def dialogs(page) -> list[str]:
    """Messages of every JavaScript dialog the tab opens (dismissed at once)."""
    messages: list[str] = []
    page.on("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
    return messages
