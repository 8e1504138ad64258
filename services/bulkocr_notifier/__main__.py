from bulkocr_notifier.service import main

main()
