"""bulkocr ingest service."""
