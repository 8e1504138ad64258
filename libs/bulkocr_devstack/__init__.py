"""bulkocr on one machine, for development, tests and `make run`: the real servers (nsqd,
nsqlookupd, nsqadmin, FerretDB) and every service as local processes on free loopback ports.
Production runs on Docker Swarm (swarm-stack.yml) and never imports this package."""
