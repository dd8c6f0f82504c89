"""Context documents: stored once, by the SHA-256 of their UTF-8 text."""

from __future__ import annotations

import hashlib

from django.db import IntegrityError, transaction

from extractor.models import Document

NAME_WORDS = 8


def document_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_store(name: str, text: str) -> Document:
    """The stored Document with this text, created on first sight.

    The first name given sticks: the same text uploaded again under another
    file name is the same document (the provider caches it once too).
    """
    sha = document_sha(text)
    existing = Document.objects.filter(sha256=sha).first()
    if existing is not None:
        return existing
    name_field = Document._meta.get_field("name")
    limit = name_field.max_length or 255
    name = (name.strip() or document_name_from(text))[:limit]
    try:
        # A savepoint: two first sights of one text race, and the loser reads the winner's.
        with transaction.atomic():
            return Document.objects.create(
                sha256=sha, name=name, text=text, size_bytes=len(text.encode("utf-8"))
            )
    except IntegrityError:
        return Document.objects.get(sha256=sha)


def document_name_from(text: str) -> str:
    """A name for a pasted document: its first words, "…" when there are more."""
    words = text.split()
    if not words:
        return "Empty document"
    shown = " ".join(words[:NAME_WORDS])
    return f"{shown}…" if len(words) > NAME_WORDS else shown
