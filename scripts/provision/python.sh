# Python clients for the direct-producer tests (sourced by scripts/test):
# confluent-kafka (its wheel carries a current librdkafka) and pika; and the
# validators of scripts/check-deploy, which ship their schemas (PyYAML,
# jsonschema, kubernetes-validate, check-jsonschema for the Compose schema);
# in a virtualenv cached under ~/.cache/sluice/venv.
SLUICE_VENV="$HOME/.cache/sluice/venv"
if [ ! -x "$SLUICE_VENV/bin/python" ]; then
  need python3 || apt_install python3
  python3 -m venv "$SLUICE_VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$SLUICE_VENV"; }
fi
if ! "$SLUICE_VENV/bin/python" -c 'import confluent_kafka, pika, yaml, jsonschema, kubernetes_validate, check_jsonschema' 2>/dev/null; then
  echo "installing the test tools' Python packages from PyPI"
  "$SLUICE_VENV/bin/pip" install -q 'confluent-kafka>=2.6' 'pika>=1.3' \
    'PyYAML>=6' 'jsonschema>=4.20' 'kubernetes-validate>=1.31' 'check-jsonschema>=0.29'
fi
export SLUICE_TEST_PYTHON="$SLUICE_VENV/bin/python"
