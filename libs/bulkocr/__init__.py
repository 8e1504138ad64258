"""bulkocr: OCR whole scanned collections on a cluster."""

__version__ = "0.1.0"
