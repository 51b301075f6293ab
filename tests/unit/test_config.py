from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from crossbook.config import load_config
from crossbook.errors import ConfigError
from crossbook.venues.wsfeed import backoff_delays

EXAMPLE = Path(__file__).parents[2] / "examples" / "crossbook.toml"


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE, env={})
    assert cfg.feed.stale_after_ms == 500
    assert cfg.polymarket.max_assets_per_connection == 200
    assert cfg.kalshi.markets == ["KXFEDDECISION-26DEC-H0"]


def test_env_overrides_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[redis]\nurl = "redis://a:1/0"\n[kalshi]\nmarkets = ["X"]\n')
    cfg = load_config(p, env={"CROSSBOOK_REDIS_URL": "redis://b:2/0", "CROSSBOOK_KALSHI_MARKETS": "A, B",
                              "CROSSBOOK_FEED_STALE_AFTER_MS": "250", "CROSSBOOK_KALSHI_USE_YES_PRICE": "true"})
    assert cfg.redis.url == "redis://b:2/0"
    assert cfg.kalshi.markets == ["A", "B"]
    assert cfg.feed.stale_after_ms == 250
    assert cfg.kalshi.use_yes_price is True


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[redis]\nurll = 1\n", "unknown setting redis.'urll'"),
        ("[feed]\nstale_after_ms = \"soon\"\n", "feed.stale_after_ms must be int"),
        ("[polymarket]\nmax_assets_per_connection = 500\n", "between 1 and 200"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=None) as ei:
        load_config(p, env={})
    assert needle in str(ei.value)


def test_bad_env_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="CROSSBOOK_FEED_STALE_AFTER_MS"):
        load_config(None, env={"CROSSBOOK_FEED_STALE_AFTER_MS": "fast"})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/crossbook.toml", env={})


def test_backoff_is_jittered_exponential_and_capped() -> None:
    delays = list(itertools.islice(backoff_delays(0.25, 4.0, random.Random(1)), 10))
    caps = [0.25, 0.5, 1, 2, 4, 4, 4, 4, 4, 4]
    for d, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= d <= cap
    assert len(set(delays)) == len(delays)
