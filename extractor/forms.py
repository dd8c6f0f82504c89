"""Forms: what a page accepts, with errors a person can act on."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from extractor.schemas import registered_schemas


class ExtractForm(forms.Form):
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "placeholder": "Jason is 25 years old."}),
        strip=True,
        error_messages={"required": "Enter some text to extract from."},
    )
    schema = forms.ChoiceField(help_text="The response model to extract.")
    model = forms.ChoiceField(label="LLM model")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["schema"].choices = [(name, name) for name in registered_schemas()]
        self.fields["model"].choices = [(name, name) for name in settings.EXTRACTOR_MODELS]
        self.fields["model"].initial = settings.EXTRACTOR_DEFAULT_MODEL
        limit = settings.EXTRACTOR_MAX_TEXT_BYTES
        self.fields["text"].help_text = f"Up to {filesizeformat(limit)}."

    def clean_text(self) -> str:
        text: str = self.cleaned_data["text"]
        size = len(text.encode("utf-8"))
        limit = settings.EXTRACTOR_MAX_TEXT_BYTES
        if size > limit:
            raise forms.ValidationError(
                f"The text is {filesizeformat(size)}; the limit is {filesizeformat(limit)} "
                "(EXTRACTOR_MAX_TEXT_BYTES)."
            )
        return text
