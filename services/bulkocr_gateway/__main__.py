from bulkocr_gateway.service import main

main()
