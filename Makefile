# The two commands a new user needs: `make run` and `make test`. Each sets up what it needs
# on a fresh machine: a virtualenv in .venv/ with the Python packages, the real servers
# (nsqd, nsqlookupd, nsqadmin, FerretDB) built with Go into .tools/bin/, Debian's
# chromium for the web app's browser tests, and Debian's Tesseract models and fonts for the
# scripts PP-OCRv6 does not read.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
SERVERS := .tools/bin/nsqd .tools/bin/nsqlookupd .tools/bin/nsqadmin .tools/bin/ferretdb
CHROMIUM := /usr/bin/chromium

.PHONY: setup servers iproute2 tesseract ocrmypdf run test lint typecheck unit integration cluster clean

setup: $(INSTALLED) servers chromium tesseract

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[ocr]' --group dev
	touch $@

servers: $(SERVERS)

# $(call debian_packages,PACKAGES,WHAT FAILS WITHOUT THEM): installs Debian packages with
# apt-get when we are root, else says what will fail and how to install them.
debian_packages = if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); else echo "$(2) (as root: apt-get install $(1))"; fi

# The cluster tests (tests/cluster) build network namespaces with iproute2's `ip`, as root. A
# bare Debian has no `ip`: it is installed here when missing and we are root; otherwise those
# tests fail and say why.
iproute2:
	@if ! command -v ip >/dev/null 2>&1 && ! test -x /usr/sbin/ip && ! test -x /sbin/ip; then \
	  $(call debian_packages,iproute2,iproute2 is missing: the cluster tests will fail); \
	fi

$(SERVERS) &: deploy/build-servers.sh deploy/tools/go.mod deploy/tools/go.sum
	bash deploy/build-servers.sh

# The web app's browser tests (tests/e2e/test_web_app.py) drive Debian's chromium through
# Playwright, which never downloads a browser of its own. It is installed here when missing
# and we are root; otherwise those tests fail and say why.
.PHONY: chromium
chromium:
	@if ! test -x $(CHROMIUM); then \
	  $(call debian_packages,chromium,$(CHROMIUM) is missing: the web app's browser tests will fail); \
	fi

# The OCR worker reads Cyrillic, Greek, Arabic, Hebrew and Devanagari pages with Tesseract
# (tesserocr bundles the library; the models are Debian's) and detects the script of pages
# of jobs that name no language with its OSD model; the script tests set their pages in
# DejaVu and Noto. Installed here when missing and we are root; otherwise those tests fail
# and say why. Another language is one more tesseract-ocr-LANG package.
TESSDATA := /usr/share/tesseract-ocr/5/tessdata
TESSERACT_LANGUAGES := eng osd rus ell ara heb hin
TESSERACT_PACKAGES := $(addprefix tesseract-ocr-,$(TESSERACT_LANGUAGES)) fonts-dejavu-core fonts-noto-core
tesseract:
	@missing=""; \
	for lang in $(TESSERACT_LANGUAGES); do \
	  test -f $(TESSDATA)/$$lang.traineddata || missing="$$missing $$lang"; \
	done; \
	test -f /usr/share/fonts/truetype/noto/NotoNaskhArabic-Regular.ttf || missing="$$missing fonts"; \
	if [ -n "$$missing" ]; then \
	  $(call debian_packages,$(TESSERACT_PACKAGES),Tesseract models missing ($$missing): the script tests will fail); \
	fi

# The OCR speed benchmark's side-by-side (bench/bench_ocr.py --speed) runs OCRmyPDF with
# Debian's Tesseract; OCRmyPDF lives in a virtualenv of its own so its pins never meet ours.
OCRMYPDF_VENV := .venv-ocrmypdf
ocrmypdf: tesseract
	test -x $(OCRMYPDF_VENV)/bin/ocrmypdf || { $(PYTHON) -m venv $(OCRMYPDF_VENV) \
	  && $(OCRMYPDF_VENV)/bin/pip install --quiet --disable-pip-version-check ocrmypdf==17.13.0; }

# `make run`: bring everything up on loopback, OCR the sample scans, write their text to
# out/samples/, and bring everything down again.
PORT ?= 8080
RUN_TOKEN ?= local-dev-token
run: setup
	-$(BIN)/bulkocr down >/dev/null 2>&1
	BULKOCR_API_TOKENS=local:$(RUN_TOKEN) $(BIN)/bulkocr up --detach --workers 2 --port $(PORT)
	BULKOCR_TOKEN=$(RUN_TOKEN) BULKOCR_URL=http://127.0.0.1:$(PORT) \
	  $(BIN)/bulkocr submit samples/*.png samples/*.pdf --wait --out out/samples; \
	  status=$$?; $(BIN)/bulkocr down; exit $$status

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

unit: $(INSTALLED)
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

cluster: setup iproute2
	$(BIN)/pytest tests/cluster

test: setup iproute2 lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) $(OCRMYPDF_VENV) .tools .bulkocr out .mypy_cache .ruff_cache .pytest_cache
