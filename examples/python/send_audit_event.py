"""Send one audit event to auditcol with the official OpenTelemetry Python SDK.

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python send_audit_event.py                 # OTLP/gRPC to 127.0.0.1:4317
    .venv/bin/python send_audit_event.py http://127.0.0.1:4317

An audit event is an OTLP log record with `audit.type` (the noun) and
`audit.action` (the verb); the payload is the body; the actor goes in
`audit.actor.<field>` attributes. auditcol acknowledges a request only once
its events are exported, so a successful export means they are written.
"""
import sys
import time

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource


def main():
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4317"
    provider = LoggerProvider(resource=Resource.create({"service.name": "flag-admin"}))
    # Simple (not batch) processing: each emit is exported at once; a
    # refusal or an unreachable collector is logged by the SDK.
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True))
    )
    logger = provider.get_logger("audit")
    logger.emit(
        timestamp=time.time_ns(),
        body={"key": "dark-mode", "enabled": True},  # the payload
        attributes={
            "audit.type": "flag",
            "audit.action": "updated",
            "audit.actor.email": "kyle@example.com",
        },
    )
    provider.shutdown()
    print("sent flag:updated to", endpoint)


if __name__ == "__main__":
    main()
