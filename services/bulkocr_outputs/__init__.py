"""bulkocr outputs service: builds heavy output formats when a job completes."""
