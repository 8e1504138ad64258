"""The Grafana dashboard in deploy/ asks only for metrics the services export: a renamed
metric would otherwise leave a panel silently empty."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
METRIC_MODULES = [
    "bulkocr.metrics",
    "bulkocr_gateway.metrics",
    "bulkocr_ocr_worker.metrics",
    "bulkocr_ingest.metrics",
    "bulkocr_aggregator.metrics",
    "bulkocr_aggregator.writes",
    "bulkocr_autoscaler.metrics",
]


def exported_series() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    return {sample.name for family in REGISTRY.collect() for sample in family.samples} | {
        f"{family.name}{suffix}"
        for family in REGISTRY.collect()
        for suffix in ("_total", "_bucket", "_count", "_sum", "")
    }


def test_every_metric_the_dashboard_asks_for_is_exported():
    panels = json.loads(DASHBOARD.read_text())["panels"]
    asked = {
        name for panel in panels for target in panel["targets"] for name in re.findall(r"bulkocr_\w+", target["expr"])
    }
    assert len(asked) >= 15
    missing = sorted(asked - exported_series())
    assert missing == [], f"the dashboard asks for metrics nobody exports: {missing}"
