"""An independent Kafka client for the end-to-end tests: confluent-kafka
(the Python client of librdkafka), not auditcol's code.

  kafka_client.py consume --brokers B --topic T --count N --encoding E [--timeout S]
      Reads topic T from the beginning of every partition (no consumer group)
      until N messages arrived and no more came for a moment, decodes each
      value in encoding E and prints one JSON list:
      [{"partition", "offset", "key", "headers": {...}, "value": <decoded>}, ...]

      json        the Flipt v0.2 event (json.loads)
      protobuf    flipt.audit.Event, decoded with a schema built here from
                  Flipt's own definition (fields 1-7, Actor 1-5), printed
                  with protobuf's JSON mapping (Struct -> object,
                  Timestamp -> RFC 3339)
      otlp_proto  ExportLogsServiceRequest from the opentelemetry-proto package
      otlp_json   the OTLP/JSON text (json.loads)

  kafka_client.py produce --brokers B --topic T < values
      Produces one message per stdin line (the line's bytes, as they are),
      waits for every delivery report, prints {"produced": N}.
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf import struct_pb2, timestamp_pb2  # noqa: F401  (registers the well-known types)


def flipt_event_class():
    """flipt.audit.Event as Flipt's rpc/flipt/audit/event.proto defines it."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="flipt_audit_event_test.proto",
        package="flipt.audit",
        syntax="proto3",
        dependency=["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"],
    )
    actor = file.message_type.add(name="Actor")
    for number, name in enumerate(["authentication", "ip", "email", "name", "picture"], 1):
        actor.field.add(name=name, number=number, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    metadata = file.message_type.add(name="Metadata")
    metadata.field.add(name="actor", number=1, type=f.TYPE_MESSAGE, type_name=".flipt.audit.Actor", label=f.LABEL_OPTIONAL)
    event = file.message_type.add(name="Event")
    for number, name in [(1, "version"), (2, "type"), (3, "action")]:
        event.field.add(name=name, number=number, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    event.field.add(name="metadata", number=4, type=f.TYPE_MESSAGE, type_name=".flipt.audit.Metadata", label=f.LABEL_OPTIONAL)
    event.field.add(name="payload", number=5, type=f.TYPE_MESSAGE, type_name=".google.protobuf.Struct", label=f.LABEL_OPTIONAL)
    event.field.add(name="timestamp", number=6, type=f.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=f.LABEL_OPTIONAL)
    event.field.add(name="status", number=7, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("flipt.audit.Event"))


def decode(encoding, value):
    if encoding in ("json", "otlp_json"):
        return json.loads(value)
    if encoding == "protobuf":
        message = flipt_event_class()()
        message.ParseFromString(value)
        return json_format.MessageToDict(message, preserving_proto_field_name=True)
    if encoding == "otlp_proto":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

        request = ExportLogsServiceRequest()
        request.ParseFromString(value)
        return json_format.MessageToDict(request)
    raise SystemExit(f"unknown encoding {encoding}")


def consume(args):
    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": "auditcol-e2e-reader",
        "enable.auto.commit": False,
    })
    metadata = consumer.list_topics(args.topic, timeout=10)
    partitions = metadata.topics[args.topic].partitions
    consumer.assign([TopicPartition(args.topic, p, 0) for p in partitions])
    messages = []
    deadline = time.monotonic() + args.timeout
    quiet_until = None
    while time.monotonic() < deadline:
        m = consumer.poll(0.1)
        if m is not None:
            if m.error():
                raise SystemExit(f"consumer error: {m.error()}")
            messages.append({
                "partition": m.partition(),
                "offset": m.offset(),
                "key": m.key().decode() if m.key() is not None else None,
                "headers": {k: v.decode() for k, v in (m.headers() or [])},
                "value": decode(args.encoding, m.value()),
            })
        if len(messages) >= args.count:
            # Wait a moment longer: duplicates would show here.
            quiet_until = quiet_until or time.monotonic() + 1.0
            if time.monotonic() >= quiet_until:
                break
    consumer.close()
    print(json.dumps(messages))


def produce(args):
    producer = Producer({"bootstrap.servers": args.brokers})
    failures = []
    count = 0
    for line in sys.stdin.buffer:
        value = line.rstrip(b"\n")
        producer.produce(args.topic, value, on_delivery=lambda err, _m: err and failures.append(str(err)))
        count += 1
    producer.flush(30)
    if failures:
        raise SystemExit(f"not delivered: {failures}")
    print(json.dumps({"produced": count}))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("consume")
    c.add_argument("--brokers", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--encoding", required=True)
    c.add_argument("--timeout", type=float, default=30)
    p = sub.add_parser("produce")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    args = parser.parse_args()
    consume(args) if args.command == "consume" else produce(args)


if __name__ == "__main__":
    main()
