"""bulkocr uploader service."""
