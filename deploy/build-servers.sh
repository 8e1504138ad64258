#!/usr/bin/env bash
# Builds the real servers bulkocr runs on one machine and in tests, once, into a git-ignored folder:
#   nsqd, nsqlookupd, nsqadmin (nsq v1.3.0) and ferretdb (FerretDB v1.24.2, SQLite backend).
# Everything comes from the Go module proxy; a binary already built is reused.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${BULKOCR_TOOLS_BIN:-$(cd "$here/.." && pwd)/.tools/bin}
work=$(dirname "$bin")/build
ferretdb_version=v1.24.2
mkdir -p "$bin" "$work"

if ! command -v go >/dev/null; then
  echo "build-servers: Go is required (https://go.dev/dl/ or apt-get install golang)" >&2
  exit 1
fi

# nsq's own go.mod has a replace directive, which `go install pkg@version` refuses, so the
# three apps are built from deploy/tools/go.mod, which requires nsq v1.3.0 and repeats it.
if [[ ! -x $bin/nsqd || ! -x $bin/nsqlookupd || ! -x $bin/nsqadmin ]]; then
  echo "build-servers: building nsqd, nsqlookupd, nsqadmin v1.3.0" >&2
  (cd "$here/tools" && go build -o "$bin/" \
    github.com/nsqio/nsq/apps/nsqd github.com/nsqio/nsq/apps/nsqlookupd github.com/nsqio/nsq/apps/nsqadmin)
fi

# FerretDB embeds build/version/version.txt, which its module zip leaves out (it is generated
# from git), and `go install` panics at start without it. So build from a copy of the module
# source with that one file written in.
#
# One line of that copy is changed: its SQLite backend indexes `_id` as
# `_ferretdb_sjson->"_id"` but looks it up as `_ferretdb_sjson->'$._id'`, an expression
# SQLite does not match to the index, so every lookup by key read the whole table (11 ms in a
# table of 20,000 records, growing with everything the database holds). Written as the index
# has it (`->'_id'`, which SQLite reads as `$._id`: the same value), the lookup uses the index
# (docs/design-notes.md, "Why FerretDB is built with its _id lookup patched").
id_lookup=$bin/.ferretdb-id-lookup-uses-index
if [[ ! -x $bin/ferretdb || ! -e $id_lookup ]]; then
  echo "build-servers: building ferretdb $ferretdb_version" >&2
  src=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$ferretdb_version" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$work/ferretdb"
  cp -r "$src" "$work/ferretdb"
  chmod -R u+w "$work/ferretdb"
  echo "$ferretdb_version" >"$work/ferretdb/build/version/version.txt"
  metadata=$work/ferretdb/internal/backends/sqlite/metadata/metadata.go
  sed -i "s/IDColumn = DefaultColumn + \"->'\\\$\\._id'\"/IDColumn = DefaultColumn + \"->'_id'\"/" "$metadata"
  if ! grep -q "IDColumn = DefaultColumn + \"->'_id'\"" "$metadata"; then
    echo "build-servers: FerretDB's _id lookup is not where this script expects it; see its comment" >&2
    exit 1
  fi
  rm -f "$bin/ferretdb"
  (cd "$work/ferretdb" && go build -o "$bin/ferretdb" ./cmd/ferretdb)
  touch "$id_lookup"
fi

"$bin/nsqd" --version >&2
"$bin/ferretdb" --version >&2
