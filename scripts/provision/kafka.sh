# A Kafka-protocol broker on loopback for the Kafka tests (sourced by
# scripts/test). Unless SLUICE_TEST_KAFKA_BROKERS is given: when nothing
# listens on 127.0.0.1:9092, build tansu from crates.io once (cached under
# ~/.cache/sluice/tansu; its default build has no storage engine, so with
# features dynostore,postgres) and run it on its memory engine until the tests
# end. The broker-restart scenario runs a tansu of its own on its PostgreSQL
# engine (see tansu-pg.sh), which keeps the log across a restart. librdkafka is built from source by the rdkafka crate: cmake, and
# libcurl's headers (librdkafka 2.12's cmake build needs them).
TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,postgres
TANSU_ROOT="$HOME/.cache/sluice/tansu"
export SLUICE_TANSU_BIN="$TANSU_ROOT/bin/tansu"
install_tansu() {
  if [ ! -x "$SLUICE_TANSU_BIN" ] || ! "$SLUICE_TANSU_BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION" \
    || [ "$(cat "$TANSU_ROOT/features" 2>/dev/null)" != "$TANSU_FEATURES" ]; then
    echo "building tansu $TANSU_VERSION (once; about 15 minutes on two cores)"
    CARGO_TARGET_DIR="$HOME/.cache/sluice/tansu-target" \
      cargo install --locked --force tansu --version "$TANSU_VERSION" --features "$TANSU_FEATURES" --root "$TANSU_ROOT"
    echo "$TANSU_FEATURES" >"$TANSU_ROOT/features"
  fi
}
provision_kafka() {
  if ! port_open 9092; then
    install_tansu
    echo "starting tansu on 127.0.0.1:9092 (memory storage)"
    "$SLUICE_TANSU_BIN" broker \
      --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
      --storage-engine memory://tansu/ >"$HOME/.cache/sluice/tansu.log" 2>&1 &
    SLUICE_TANSU_PID=$!
    trap 'kill "$SLUICE_TANSU_PID" 2>/dev/null || true' EXIT
    wait_port 9092 60 tansu
  fi
  export SLUICE_TEST_KAFKA_BROKERS="127.0.0.1:9092"
}
need cmake || apt_install cmake
if need dpkg && ! dpkg -s libcurl4-openssl-dev >/dev/null 2>&1; then apt_install libcurl4-openssl-dev; fi
if [ -z "${SLUICE_TEST_KAFKA_BROKERS:-}" ]; then provision_kafka; fi
# fault tests start brokers of their own; make sure the binary is there
install_tansu
echo "Kafka tests use $SLUICE_TEST_KAFKA_BROKERS"
