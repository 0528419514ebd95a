"""A direct producer for sluice's Kafka tests: publishes to a queue's topic
with confluent-kafka, the way an outside service would, and prints one JSON
line per message with where it landed (partition, offset, timestamp).

usage: kafka_produce.py BOOTSTRAP TOPIC CE_BINARY_ID CE_STRUCTURED_ID

Messages, in order:
  binary      CloudEvents binary mode: ce_* headers, body = data (JSON)
  structured  CloudEvents structured mode: application/cloudevents+json body
  plain       plain JSON body, no headers
  bad         a body that is not JSON
"""

import json
import sys

from confluent_kafka import Producer


def main() -> int:
    bootstrap, topic, binary_id, structured_id = sys.argv[1:5]
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
    )
    messages = [
        (
            "binary",
            b"order-1",
            json.dumps({"kind": "binary", "n": 1}).encode(),
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", binary_id.encode()),
                ("ce_source", b"shop"),
                ("ce_type", b"com.example.order.created"),
                ("content-type", b"application/json"),
            ],
        ),
        (
            "structured",
            b"order-2",
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": structured_id,
                    "source": "shop",
                    "type": "com.example.order.created",
                    "datacontenttype": "application/json",
                    "data": {"kind": "structured", "n": 2},
                }
            ).encode(),
            [("content-type", b"application/cloudevents+json; charset=utf-8")],
        ),
        ("plain", None, json.dumps({"kind": "plain", "n": 3}).encode(), []),
        ("bad", None, b"\x00this is not json{", []),
    ]
    results = {}

    def report(kind):
        def done(err, msg):
            if err is not None:
                results[kind] = {"kind": kind, "error": str(err)}
            else:
                # CreateTime, set by this producer and stored with the
                # record; sluice's position of a record includes it
                ts_type, ts = msg.timestamp()
                results[kind] = {
                    "kind": kind,
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "timestamp": ts if ts_type != 0 else None,
                }

        return done

    for kind, key, value, headers in messages:
        producer.produce(
            topic, key=key, value=value, headers=headers, on_delivery=report(kind)
        )
    remaining = producer.flush(30)
    if remaining:
        print(f"{remaining} messages not delivered", file=sys.stderr)
        return 1
    for kind, _, _, _ in messages:
        print(json.dumps(results[kind]))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
