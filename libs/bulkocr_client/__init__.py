"""The user's side of bulkocr: the `bulkocr` command and the gateway client it is built on.

It speaks HTTP to a gateway and nothing else: it needs neither the database nor the queue
libraries (a test checks its imports), so it installs and runs on any archivist's machine.
"""
