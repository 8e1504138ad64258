"""bulkocr aggregator service."""
