"""bulkocr autoscaler: scales the OCR workers' Swarm service to the pages waiting for them."""

from bulkocr_autoscaler.service import main

main()
