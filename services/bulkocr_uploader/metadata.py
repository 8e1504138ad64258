"""The Strawberry Field JSON of the objects a push creates, and the AMI set's own JSON. Pure.

Archipelago builds its `as:*` file structures itself from the integer file ids listed
under `ap:entitymapping`; file ids as strings are dropped silently, so they go as JSON
integers, and the JSON never carries hand-made `as:*` entries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bulkocr import __version__
from bulkocr.ami import AMI_COLUMNS
from bulkocr.contracts import PushOptions

# Archipelago names Drupal titles after `label`, cut to 255 characters.
MAX_TITLE = 255

# ISO 639-1 to ISO 639-3 for the languages bulkocr's engines read; Archipelago wants 639-3.
_ISO_639_3 = {
    "en": "eng",
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "it": "ita",
    "nl": "nld",
    "pt": "por",
    "la": "lat",
    "pl": "pol",
    "ru": "rus",
    "sv": "swe",
    "da": "dan",
    "fi": "fin",
    "cs": "ces",
    "el": "ell",
    "zh": "zho",
    "ja": "jpn",
    "ko": "kor",
    "ar": "ara",
}

Json = dict[str, Any]


def title_of(label: str) -> str:
    return label if len(label) <= MAX_TITLE else label[: MAX_TITLE - 1] + "…"


def language_iso639_3(language: str | None) -> str | None:
    """The job's first language: jobs name theirs in ISO 639-3 (`rus,eng`); older jobs in 639-1."""
    if not language:
        return None
    code = language.replace("+", ",").split(",")[0].strip().lower()
    if len(code) == 3 and code.isalpha():
        return code
    return _ISO_639_3.get(code)


def _generator() -> Json:
    return {
        "type": "Create",
        "actor": {"name": "bulkocr", "type": "Service", "version": __version__},
        "summary": "Generator",
        "@context": "https://www.w3.org/ns/activitystreams",
    }


def collection_metadata(label: str, job_id: str) -> Json:
    return {
        "type": "Collection",
        "label": label,
        "ap:entitymapping": {"entity:file": [], "entity:node": ["ismemberof"]},
        "bulkocr": {"job_id": job_id},
        "as:generator": _generator(),
    }


def document_metadata(
    document: Mapping[str, Any],
    *,
    label: str,
    collection_nid: int,
    files: Mapping[str, int],
    options: PushOptions,
    language: str | None,
) -> Json:
    """A document's object: its PDF under `documents`, its text under `texts`, a member
    of the job's collection. `files` maps "pdf"/"txt" to Archipelago's integer file ids."""
    metadata: Json = {
        "type": options.ado_type,
        "label": label,
        "documents": [int(files["pdf"])] if "pdf" in files else [],
        "texts": [int(files["txt"])] if "txt" in files else [],
        "ismemberof": [int(collection_nid)],
        "ap:entitymapping": {"entity:file": ["documents", "texts"], "entity:node": ["ismemberof"]},
        # Keep the order of the ids above rather than sorting files by name.
        "ap:tasks": {"ap:sortfiles": "index"},
        "bulkocr": {
            "job_id": document["job_id"],
            "doc_id": document["doc_id"],
            "filename": document.get("filename"),
            "pages": document.get("pages"),
            "sha256": document.get("sha256"),
        },
        "as:generator": _generator(),
    }
    if (code := language_iso639_3(language)) is not None:
        metadata["language_iso639_3"] = code
    return metadata


def node_attributes(metadata: Json, options: PushOptions) -> Json:
    """The JSON:API attributes of an object: the Strawberry Field is one JSON string."""
    return {
        "title": title_of(str(metadata["label"])),
        "field_descriptive_metadata": json.dumps(metadata, ensure_ascii=False),
        "moderation_state": options.moderation_state,
    }


def ami_set_json(options: PushOptions, total_rows: int) -> str:
    """An AMI set's configuration: spreadsheet rows mapped straight to objects, UUIDs from
    `node_uuid`, parents from `ismemberof`, files from the set's ZIP."""
    config: Json = {
        "csv": None,
        "zip": None,
        "plugin": "spreadsheet",
        "mapping": {
            "globalmapping": "direct",
            "globalmapping_settings": {
                "files": ["documents", "texts"],
                "bundle": "digital_object:field_descriptive_metadata",
                "metadata": "direct",
            },
        },
        "adomapping": {
            "base": {"label": "label"},
            "uuid": {"uuid": "node_uuid"},
            "parents": {"ismemberof": "ismemberof"},
            "autouuid": 0,
        },
        "total_rows": total_rows,
        "column_keys": list(AMI_COLUMNS),
        "pluginconfig": {"op": "create"},
        "status": {options.ado_type: options.moderation_state, "Collection": options.moderation_state},
    }
    return json.dumps(config)
