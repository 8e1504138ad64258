from bulkocr_outputs.service import main

main()
