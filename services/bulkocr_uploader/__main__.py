from bulkocr_uploader.service import main

main()
