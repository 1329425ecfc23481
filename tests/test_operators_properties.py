"""Property tests of the anonymize/restore round trip (guardproxy/policies/operators.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from guardproxy.policies.chain import Edit
from guardproxy.policies.operators import MemoryScope, apply_edits, redact_all, restore

PROPERTIES = settings(max_examples=100, deadline=None, database=None)
LABELS = ("EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON", "US_SSN")
# No "[": a text that already holds a placeholder-shaped string is the one case the round trip does not cover
# (restore cannot tell `[PERSON_1]` typed by the user from the placeholder it stands for; see the last test).
TEXT = st.text(st.characters(blacklist_characters="[", blacklist_categories=("Cs",)), max_size=80)


@st.composite
def text_and_edits(draw: st.DrawFn, action: str = "anonymize") -> tuple[str, list[Edit]]:
    """A text and sorted, non-overlapping, non-empty edits over it."""
    text = draw(TEXT)
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=10)))
    edits = []
    for start, end in zip(cuts[0::2], cuts[1::2], strict=False):
        if start < end:
            edits.append(Edit(start, end, draw(st.sampled_from(LABELS)), action))  # type: ignore[arg-type]
    return text, edits


@PROPERTIES
@given(text_and_edits())
def test_restore_undoes_anonymize(case: tuple[str, list[Edit]]) -> None:
    text, edits = case
    scope = MemoryScope()
    anonymized = apply_edits(text, edits, scope)
    assert restore(anonymized, scope) == text


@PROPERTIES
@given(text_and_edits())
def test_anonymize_changes_only_the_edited_spans(case: tuple[str, list[Edit]]) -> None:
    text, edits = case
    scope = MemoryScope()
    anonymized = apply_edits(text, edits, scope)
    bounds = [0, *(x for e in edits for x in (e.start, e.end)), len(text)]
    kept = [text[start:end] for start, end in zip(bounds[0::2], bounds[1::2], strict=True)]
    # What is not a placeholder is exactly the text between the edits, in order.
    assert "".join(kept) == _without_placeholders(anonymized, scope)


def _without_placeholders(text: str, scope: MemoryScope) -> str:
    for i in range(len(scope), 0, -1):  # longest numbers first: [PERSON_10] before [PERSON_1]
        for label in LABELS:
            text = text.replace(f"[{label}_{i}]", "")
    return text


@PROPERTIES
@given(st.lists(st.tuples(st.sampled_from(LABELS), st.text(min_size=1, max_size=12)), max_size=20))
def test_one_placeholder_per_value_and_label(values: list[tuple[str, str]]) -> None:
    scope = MemoryScope()
    placeholders = [scope.placeholder_for(label, original) for label, original in values]
    assert len(set(placeholders)) == len(set(values))  # same value -> same placeholder; different -> different
    for (label, original), placeholder in zip(values, placeholders, strict=True):
        assert placeholder.startswith(f"[{label}_")
        assert scope.original_of(placeholder) == original


@PROPERTIES
@given(text_and_edits(action="redact"))
def test_redact_keeps_no_original_and_needs_no_scope(case: tuple[str, list[Edit]]) -> None:
    text, edits = case
    assert apply_edits(text, edits, MemoryScope()) == redact_all(text, edits)
    assert restore(redact_all(text, edits), None) == redact_all(text, edits)


@PROPERTIES
@given(text_and_edits(), st.text(max_size=40))
def test_restore_without_placeholders_of_this_request_changes_nothing(case: tuple[str, list[Edit]], other: str) -> None:
    text, edits = case
    ours = MemoryScope()
    apply_edits(text, edits, ours)
    assert restore(other, MemoryScope()) == other  # another scope never restores our values


def test_a_placeholder_typed_by_the_user_is_restored_too() -> None:
    """Known limit of the round trip, pinned so a change is noticed: within one request, a literal that looks
    like a placeholder the request also produced is restored as if it were one (it only ever yields a value
    of the same request, never another request's)."""
    scope = MemoryScope()
    text = "[PERSON_1] wrote to Alice"
    anonymized = apply_edits(text, [Edit(20, 25, "PERSON", "anonymize")], scope)
    assert anonymized == "[PERSON_1] wrote to [PERSON_1]"
    assert restore(anonymized, scope) == "Alice wrote to Alice"
