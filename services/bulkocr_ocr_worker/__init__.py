"""bulkocr ocr_worker service."""
