#!/usr/bin/env python3
"""Writes the binary seeds of fuzz/corpus/ (otlp_protobuf, kafka_message).

The OTLP seeds are the OTLP/JSON seeds of fuzz/corpus/otlp_json read with
the official protobuf classes of the OpenTelemetry Python SDK (the venv that
scripts/test.sh installs), plus a few shapes JSON cannot spell (fields
repeated, out of order, unknown); the Kafka seeds are one message per
encoding. Run it again after changing a JSON seed:

    ~/.cache/auditcol/venv/bin/python fuzz/make-seeds.py
"""

import base64
import json
import pathlib
import struct

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"


def otlp_from_json(text):
    """OTLP/JSON → protobuf. OTLP/JSON spells ids in hex, proto3 JSON in base64."""
    request = json.loads(text)

    def fix(value):
        if isinstance(value, dict):
            for key in list(value):
                if key in ("traceId", "spanId") and isinstance(value[key], str):
                    value[key] = base64.b64encode(bytes.fromhex(value[key])).decode()
                else:
                    fix(value[key])
        elif isinstance(value, list):
            for item in value:
                fix(item)

    fix(request)
    message = logs_service_pb2.ExportLogsServiceRequest()
    json_format.ParseDict(request, message)
    return message.SerializeToString()


def key(number, wire_type):
    return varint(number << 3 | wire_type)


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited field."""
    return key(number, 2) + varint(len(payload)) + payload


def string_attribute(name, value):
    any_value = field(1, value.encode())
    return field(6, field(1, name.encode()) + field(2, any_value))


def flipt_event(noun, verb, actor, payload, seconds, nanos, status, other=()):
    """A `flipt.audit.Event` (proto/flipt/audit/event.proto), by hand."""
    actor_bytes = b"".join(field(i + 1, v.encode()) for i, v in enumerate(actor) if v)
    for name, value in other:
        actor_bytes += field(100, field(1, name.encode()) + field(2, value.encode()))
    struct_value = struct_pb2.Struct()
    struct_value.update(payload)
    timestamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    return (
        field(1, b"0.2")
        + field(2, noun.encode())
        + field(3, verb.encode())
        + field(4, field(1, actor_bytes))
        + field(5, struct_value.SerializeToString())
        + field(6, timestamp.SerializeToString())
        + field(7, status.encode())
    )


def main():
    protobuf = CORPUS / "otlp_protobuf"
    kafka = CORPUS / "kafka_message"
    protobuf.mkdir(exist_ok=True)
    kafka.mkdir(exist_ok=True)

    for seed in sorted((CORPUS / "otlp_json").glob("*.json")):
        (protobuf / (seed.stem + ".pb")).write_bytes(otlp_from_json(seed.read_text()))

    # A record whose fields protobuf allows but no encoder writes: time and
    # body twice (the last wins, messages merge), an unknown field, the
    # attributes before the time, an empty key-value.
    record = (
        string_attribute("audit.type", "flag")
        + string_attribute("audit.action", "updated")
        + key(1, 1) + struct.pack("<Q", 1)
        + field(5, field(6, field(1, field(1, b"a") + field(2, field(1, b"x")))))
        + key(1, 1) + struct.pack("<Q", 1714557600000000000)
        + field(5, field(6, field(1, field(1, b"b") + field(2, key(3, 0) + varint(7)))))
        + key(99, 0) + varint(5)
        + field(6, b"")
    )
    scope = field(1, field(1, b"lib")) + field(2, record) + field(3, b"https://schema")
    resource = field(1, field(1, field(1, b"service.name") + field(2, field(1, b"svc"))))
    request = field(1, resource + field(2, scope))
    (protobuf / "repeated-fields.pb").write_bytes(request)

    event = {
        "version": "0.2",
        "type": "flag",
        "action": "created",
        "metadata": {"actor": {"authentication": "none", "ip": "172.17.0.1", "team": "core"}},
        "payload": {"key": "flipt", "enabled": True, "n": [1, 2.5, None]},
        "timestamp": "2024-05-01T10:00:00.5Z",
        "status": "success",
    }
    json_event = json.dumps(event, separators=(",", ":")).encode()
    proto_event = flipt_event(
        "segment", "deleted", ("token", "10.0.0.1", "a@b.c", "", ""),
        {"key": "beta", "rules": [{"rank": 1.0}], "gone": None, "on": False},
        1714557600, 500, "denied", other=(("first_name", "Kyle"),),
    )
    otlp = (protobuf / "audit-event.pb").read_bytes()
    otlp_json = (CORPUS / "otlp_json" / "audit-event.json").read_bytes().strip()

    def header(value):
        return bytes([len(value)]) + value

    # Byte 0: encoding in bits 0-1, bit 2 an audit.id header, bit 3 audit.source.
    seeds = {
        "json.bin": b"\x00" + json_event,
        "json-headers.bin": b"\x0c" + header(b"0190a1b2-0000-7000-8000-000000000001")
        + header(b"flipt") + json_event,
        "protobuf.bin": b"\x01" + proto_event,
        "protobuf-headers.bin": b"\x05" + header(b"42") + proto_event,
        "otlp_proto.bin": b"\x02" + otlp,
        "otlp_json.bin": b"\x03" + otlp_json,
    }
    for name, data in seeds.items():
        (kafka / name).write_bytes(data)


if __name__ == "__main__":
    main()
