"""What a call's arguments look like in the dashboard (the preview), the fingerprint
that says two calls asked the same thing whatever the model, and which model a call
asked for."""

from __future__ import annotations

from extractor.recording.previews import (
    PREVIEW_LENGTH,
    input_fingerprint,
    input_preview,
    model_of,
)


def test_the_preview_of_arguments_is_their_text_joined():
    assert input_preview({"text": "Jason is 25", "model": "gpt-4o"}) == "Jason is 25 · gpt-4o"


def test_arguments_without_text_are_previewed_as_json():
    assert input_preview({"count": 2, "strict": True}) == '{"count":2,"strict":true}'
    assert input_preview([1, 2]) == "[1,2]"


def test_a_bare_string_is_its_own_preview():
    assert input_preview("Jason  is\n25") == "Jason is 25"


def test_a_preview_is_cut_to_its_length_with_an_ellipsis():
    assert input_preview("a" * PREVIEW_LENGTH) == "a" * PREVIEW_LENGTH
    assert input_preview("a" * (PREVIEW_LENGTH + 1)) == "a" * (PREVIEW_LENGTH - 1) + "…"


def fingerprint(arguments, model_argument="model") -> str:
    return input_fingerprint(
        namespace="", function="app:f", arguments=arguments, model_argument=model_argument
    )


def test_the_model_argument_is_left_out_of_the_input_fingerprint():
    assert fingerprint({"text": "Jason", "model": "gpt-4o"}) == fingerprint({"text": "Jason"})
    assert fingerprint({"text": "Jason", "model": "gpt-4o"}, None) != fingerprint(
        {"text": "Jason"}, None
    )


def test_arguments_that_are_not_a_mapping_are_fingerprinted_whole():
    assert fingerprint("the model said") != fingerprint("the model")
    assert fingerprint(["model"]) != fingerprint([])


def test_the_model_asked_for_is_the_model_argument_else_the_fallback():
    assert model_of({"model": "gpt-4o"}, "model", "gpt-4o-2024-08-06") == "gpt-4o"
    assert model_of({"model": "gpt-4o"}, None, "served") == "served"
    assert model_of({"text": "Jason"}, "model", "served") == "served"


def test_a_model_argument_that_is_not_a_name_falls_back():
    assert model_of({"model": ""}, "model", "served") == "served"
    assert model_of({"model": 5}, "model", "served") == "served"
    assert model_of("a model", "model", "served") == "served"
