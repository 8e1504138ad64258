"""docs/messages.md stays true to the contracts: every topic and every payload field is documented."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from bulkocr.contracts import (
    ALL_TOPICS,
    SUBSCRIPTIONS,
    ArchiveMember,
    DeadLetter,
    DocumentRef,
    JobOptions,
    PageTimings,
    PushOptions,
)

DOC = Path(__file__).parents[2] / "docs" / "messages.md"


def sections() -> dict[str, str]:
    text = DOC.read_text()
    parts = re.split(r"^##+ `([^`]+)`.*$", text, flags=re.MULTILINE)
    return {parts[index]: parts[index + 1] for index in range(1, len(parts), 2)}


def test_every_topic_and_field_is_documented():
    """Each topic has a section naming its payload model and every one of its fields."""
    documented = sections()
    for topic in ALL_TOPICS:
        assert topic.name in documented, f"{topic.name} missing from docs/messages.md"
        section = documented[topic.name]
        for field in topic.model.model_fields:
            assert f"| `{field}` |" in section, f"{topic.name}.{field} missing from docs/messages.md"


def test_nested_models_and_dead_letters_are_documented():
    """The dead-letter payload and the nested models have their fields listed too."""
    documented = sections()
    models: list[tuple[str, type[BaseModel]]] = [
        ("<topic>.dlq", DeadLetter),
        ("JobOptions", JobOptions),
        ("DocumentRef", DocumentRef),
        ("ArchiveMember", ArchiveMember),
        ("PageTimings", PageTimings),
        ("PushOptions", PushOptions),
    ]
    for name, model in models:
        for field in model.model_fields:
            assert f"| `{field}` |" in documented[name], f"{name}.{field} missing from docs/messages.md"


def test_each_topic_names_the_channels_that_consume_it():
    """The consumer line of each topic names, in backticks, exactly the channels the topology
    table (contracts.SUBSCRIPTIONS) gives it; every consumed topic is a known topic."""
    documented = sections()
    for topic in ALL_TOPICS:
        consumer_line = next(line for line in documented[topic.name].splitlines() if line.startswith("- consumer:"))
        named = set(re.findall(r"`([^`]+)`", consumer_line))
        expected = {channel for consumed, channel in SUBSCRIPTIONS if consumed is topic}
        assert named == expected, f"{topic.name}: the docs name {named}, the topology {expected}"
    assert {consumed.name for consumed, _ in SUBSCRIPTIONS} <= {topic.name for topic in ALL_TOPICS}
