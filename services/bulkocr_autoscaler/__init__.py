"""bulkocr autoscaler service."""
