# Python clients for the direct-producer tests (sourced by scripts/test):
# confluent-kafka (its wheel carries a current librdkafka) and pika, in a
# virtualenv cached under ~/.cache/sluice/venv.
SLUICE_VENV="$HOME/.cache/sluice/venv"
if [ ! -x "$SLUICE_VENV/bin/python" ]; then
  need python3 || apt_install python3
  python3 -m venv "$SLUICE_VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$SLUICE_VENV"; }
fi
if ! "$SLUICE_VENV/bin/python" -c 'import confluent_kafka, pika' 2>/dev/null; then
  echo "installing confluent-kafka and pika from PyPI"
  "$SLUICE_VENV/bin/pip" install -q 'confluent-kafka>=2.6' 'pika>=1.3'
fi
export SLUICE_TEST_PYTHON="$SLUICE_VENV/bin/python"
