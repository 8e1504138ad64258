from bulkocr_aggregator.service import main

main()
