"""bulkocr notifier: POSTs signed webhooks when a job finishes and when a push of it ends."""
