"""bulkocr gateway service."""
