from bulkocr_ocr_worker.service import main

main()
