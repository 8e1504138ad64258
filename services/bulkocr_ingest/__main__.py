from bulkocr_ingest.service import main

main()
