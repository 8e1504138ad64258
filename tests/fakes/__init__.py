"""Fakes of the systems outside bulkocr (only those: NSQ and MongoDB are always real)."""
