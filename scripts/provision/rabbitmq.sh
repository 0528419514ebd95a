# RabbitMQ on loopback for the AMQP broker tests (sourced by scripts/test).
# Unless SLUICE_TEST_AMQP_URL is given: when nothing listens on
# 127.0.0.1:5672, install Debian's rabbitmq-server if needed and start it.
provision_rabbitmq() {
  if ! port_open 5672; then
    need rabbitmq-server || apt_install rabbitmq-server
    echo "starting RabbitMQ on 127.0.0.1:5672"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 rabbitmq-server -detached
  fi
  wait_port 5672 90 RabbitMQ
  export SLUICE_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
}
if [ -z "${SLUICE_TEST_AMQP_URL:-}" ]; then provision_rabbitmq; fi
echo "AMQP tests use $SLUICE_TEST_AMQP_URL" | sed -E 's#(//[^:@/]*):[^@/]*@#\1:***@#'
