# What the Kafka broker-restart scenario needs to run tansu on its PostgreSQL
# storage engine (sourced by scripts/test, after kafka.sh and python.sh):
# - PostgreSQL 16 or later (tansu 0.6's SQL needs it; Debian 12 ships 15): the
#   server binaries of PyPI's pgserver wheel, unpacked under
#   ~/.cache/sluice/pgserver; the test runs a server of its own from a copy;
# - tansu's schema for PostgreSQL, generated from the SQLite DDL of the
#   tansu-storage package that kafka.sh built tansu from.
PGSERVER_VERSION=0.1.4
PGSERVER_ROOT="$HOME/.cache/sluice/pgserver-$PGSERVER_VERSION"
if [ ! -x "$PGSERVER_ROOT/pgserver/pginstall/bin/postgres" ]; then
  echo "fetching PostgreSQL 16 server binaries (PyPI pgserver $PGSERVER_VERSION)"
  rm -rf "$PGSERVER_ROOT.tmp" && mkdir -p "$PGSERVER_ROOT.tmp"
  "$SLUICE_VENV/bin/pip" download -q --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux2014_x86_64 \
    -d "$PGSERVER_ROOT.tmp" "pgserver==$PGSERVER_VERSION"
  "$SLUICE_VENV/bin/python" -m zipfile -e "$PGSERVER_ROOT.tmp"/pgserver-*.whl "$PGSERVER_ROOT.tmp"
  chmod -R a+rX "$PGSERVER_ROOT.tmp"
  chmod a+x "$PGSERVER_ROOT.tmp"/pgserver/pginstall/bin/*
  rm -rf "$PGSERVER_ROOT" && mv "$PGSERVER_ROOT.tmp" "$PGSERVER_ROOT"
fi
export SLUICE_TANSU_PG_HOME="$PGSERVER_ROOT"

TANSU_PG_SCHEMA="$TANSU_ROOT/pg-schema-$TANSU_VERSION.sql"
if [ ! -s "$TANSU_PG_SCHEMA" ]; then
  CARGO_REGISTRY="${CARGO_HOME:-$HOME/.cargo}/registry"
  storage=$(ls -d "$CARGO_REGISTRY"/src/*/"tansu-storage-$TANSU_VERSION" 2>/dev/null | head -1 || true)
  [ -n "$storage" ] || storage=$(ls "$CARGO_REGISTRY"/cache/*/"tansu-storage-$TANSU_VERSION.crate" 2>/dev/null | head -1 || true)
  if [ -z "$storage" ]; then
    echo "tansu-storage $TANSU_VERSION is not in the cargo registry; fetching it with tansu"
    rm -f "$SLUICE_TANSU_BIN" && install_tansu
    storage=$(ls -d "$CARGO_REGISTRY"/src/*/"tansu-storage-$TANSU_VERSION" | head -1)
  fi
  "$SLUICE_VENV/bin/python" scripts/provision/tansu-pg-schema.py "$storage" >"$TANSU_PG_SCHEMA.tmp"
  mv "$TANSU_PG_SCHEMA.tmp" "$TANSU_PG_SCHEMA"
fi
export SLUICE_TANSU_PG_SCHEMA="$TANSU_PG_SCHEMA"
