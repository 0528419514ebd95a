"""A direct producer for sluice's AMQP tests: publishes valid and invalid
messages to a sluice queue with pika, as any outside service would.

usage: amqp_produce.py AMQP_URL QUEUE

Publishes through the default exchange to QUEUE (one message through the
QUEUE exchange), with publisher confirms, and prints one JSON line per
message: {"label": ..., "ce_id": ..., "ce_source": ...}.
"""

import json
import sys
import uuid

import pika


def main():
    url, queue = sys.argv[1], sys.argv[2]
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    sent = []

    def publish(label, body, props, exchange="", routing_key=queue, **info):
        ch.basic_publish(exchange, routing_key, body, props, mandatory=True)
        sent.append(dict(label=label, **info))

    # CloudEvents binary mode, the AMQP binding's `cloudEvents:` headers.
    ce_id = str(uuid.uuid4())
    publish(
        "binary",
        json.dumps({"n": 1, "mode": "ok"}).encode(),
        pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            headers={
                "cloudEvents:specversion": "1.0",
                "cloudEvents:id": ce_id,
                "cloudEvents:source": "pika-test",
                "cloudEvents:type": "test.created",
            },
        ),
        ce_id=ce_id,
        ce_source="pika-test",
    )
    # Binary mode with the `cloudEvents_` prefix and a non-UUID id, sent to
    # the queue's exchange rather than the queue.
    publish(
        "binary-underscore",
        json.dumps({"n": 2, "mode": "ok"}).encode(),
        pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            headers={
                "cloudEvents_specversion": "1.0",
                "cloudEvents_id": "order-17",
                "cloudEvents_source": "shop",
                "cloudEvents_type": "order.created",
            },
        ),
        exchange=queue,
        routing_key="",
        ce_id="order-17",
        ce_source="shop",
    )
    # Structured mode.
    event = {
        "specversion": "1.0",
        "id": "evt-5",
        "source": "billing",
        "type": "invoice.paid",
        "datacontenttype": "application/json",
        "data": {"n": 3, "mode": "ok"},
    }
    publish(
        "structured",
        json.dumps(event).encode(),
        pika.BasicProperties(
            content_type="application/cloudevents+json; charset=utf-8", delivery_mode=2
        ),
        ce_id="evt-5",
        ce_source="billing",
    )
    # Plain JSON with a message id, sent twice: one job.
    for _ in range(2):
        publish(
            "plain-with-id",
            json.dumps({"n": 4, "mode": "ok"}).encode(),
            pika.BasicProperties(
                content_type="application/json", message_id="plain-4", delivery_mode=2
            ),
        )
    # Plain JSON without any properties, the same message twice: AMQP gives
    # it no identity, so these are two jobs.
    for _ in range(2):
        publish("plain", json.dumps({"n": 5, "mode": "ok"}).encode(), pika.BasicProperties())
    # Invalid: not JSON, a binary CloudEvent without `source`, a payload that
    # fails the queue's schema.
    publish("not-json", b"this is not json", pika.BasicProperties(content_type="text/plain"))
    publish(
        "no-source",
        json.dumps({"n": 7, "mode": "ok"}).encode(),
        pika.BasicProperties(
            content_type="application/json",
            headers={
                "cloudEvents:specversion": "1.0",
                "cloudEvents:id": "no-source-7",
                "cloudEvents:type": "test.created",
            },
        ),
    )
    publish(
        "bad-schema",
        json.dumps({"n": "eight", "mode": "ok"}).encode(),
        pika.BasicProperties(content_type="application/json", message_id="bad-8"),
    )
    conn.close()
    for s in sent:
        print(json.dumps(s))


if __name__ == "__main__":
    main()
