"""Prices: 5-number entries (3 still accepted), dated snapshots, "provider/model" names,
a call's cost with its cache reads and writes, and what the prompt cache saved net."""

from __future__ import annotations

import pytest

from extractor.selectors.stats import Price, call_cost, price_of, prompt_cache_saving

# USD per million tokens: input, cached input, 5-minute write, 1-hour write, output.
CLAUDE = (1.0, 0.1, 1.25, 2.0, 5.0)
PRICES = {"claude-haiku-4-5": CLAUDE, "gpt-4.1": (2.0, 0.5, 8.0)}


@pytest.fixture
def prices(settings):
    settings.EXTRACTOR_PRICES = PRICES


def test_five_numbers_are_input_cached_input_two_writes_and_output(prices):
    assert price_of("claude-haiku-4-5") == Price(1.0, 0.1, 1.25, 2.0, 5.0)


def test_three_numbers_price_writes_at_anthropics_multipliers_of_input(prices):
    assert price_of("gpt-4.1") == Price(2.0, 0.5, 2.5, 4.0, 8.0)


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),  # Anthropic's snapshot form
        ("gpt-4.1-2025-04-14", "gpt-4.1"),  # OpenAI's
        ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
        ("anthropic/claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("openai/gpt-4.1", "gpt-4.1"),
        ("gpt-4.1-nano", None),  # another model, not a snapshot: never guessed
        ("openai/gpt-4.1-nano", None),
        ("claude-haiku-4-5-fast", None),
    ],
)
def test_snapshots_and_provider_names_take_their_models_price(prices, model, priced_as):
    assert price_of(model) == (price_of(priced_as) if priced_as else None)


def test_a_provider_name_with_a_price_of_its_own_keeps_it(settings):
    settings.EXTRACTOR_PRICES = {**PRICES, "gateway/gpt-4.1": (1.0, 0.5, 4.0)}

    assert price_of("gateway/gpt-4.1") == Price(1.0, 0.5, 1.25, 2.0, 4.0)


@pytest.mark.parametrize("raw", [(1.0, 0.1, 1.25, 5.0), (1.0, "cheap", 2.0), 3.0])
def test_an_entry_of_another_shape_is_unpriced_not_a_crash(settings, raw):
    settings.EXTRACTOR_PRICES = {"odd": raw}

    assert price_of("odd") is None


def test_every_default_model_is_priced_and_only_anthropic_bills_writes_above_input():
    openai = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o4-mini"]
    anthropic = ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1", "claude-3-5-haiku"]
    for model in openai:
        price = price_of(f"openai/{model}")
        assert price is not None, model
        assert price.cache_write == price.cache_write_1h == price.input
    for model in anthropic:
        price = price_of(f"anthropic/{model}")
        assert price is not None, model
        assert price.cache_write == pytest.approx(1.25 * price.input)
        assert price.cache_write_1h == pytest.approx(2 * price.input)
        assert price.cached_input == pytest.approx(price.input / 10)


def test_a_calls_cost_prices_each_part_of_its_prompt_once(prices):
    # 2,350 prompt tokens: 2,000 read, 300 written (200 for an hour), 50 uncached.
    cost = call_cost("claude-haiku-4-5", 2350, 2000, 40, write=300, write_1h=200)

    assert cost == pytest.approx((50 * 1.0 + 2000 * 0.1 + 100 * 1.25 + 200 * 2.0 + 40 * 5.0) / 1e6)


def test_the_prompt_cache_saving_takes_the_write_premium_off(prices):
    # Reads save 0.9 a token; a 5-minute write costs 0.25 above input, a 1-hour one 1.0.
    saving = prompt_cache_saving("claude-haiku-4-5", read=2000, write=300, write_1h=200)

    assert saving == pytest.approx((2000 * 0.9 - 100 * 0.25 - 200 * 1.0) / 1e6)


def test_a_write_never_read_is_a_loss(prices):
    saving = prompt_cache_saving("claude-haiku-4-5", read=0, write=2000, write_1h=0)

    assert saving == pytest.approx(-2000 * 0.25 / 1e6)


def test_an_unpriced_model_saves_an_unknown_amount(prices):
    assert prompt_cache_saving("mystery", read=2000, write=0, write_1h=0) is None
