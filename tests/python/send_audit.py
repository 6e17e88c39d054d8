"""Send Flipt-style audit events to auditcol with the official OpenTelemetry Python SDK.

Usage: send_audit.py --protocol grpc|http --endpoint HOST:PORT [--timeout SECONDS]
                     [--ca-file CA.pem [--client-cert CERT.pem --client-key KEY.pem]]
                     [--header NAME=VALUE]... < events.json

With --ca-file the connection is TLS (https://), through the SDK's own
options: for HTTP the exporter's certificate_file / client_certificate_file /
client_key_file, for gRPC its OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE /
_CLIENT_CERTIFICATE / _CLIENT_KEY variables. --header goes with every export
(gRPC metadata or HTTP header), through the SDK's `headers` option.

Each event of the JSON list on stdin becomes one OTLP log record following
auditcol's conventions (audit.* attributes, payload as a structured body,
timestamp as time_unix_nano). Prints {"exported": N, "failed": M} and exits 1
if any export failed.
"""
import argparse
import json
import os
import sys
from datetime import datetime

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource


class CountingExporter(LogRecordExporter):
    """Wraps the real exporter to learn whether auditcol accepted each request."""

    def __init__(self, inner):
        self.inner = inner
        self.exported = 0
        self.failed = 0

    def export(self, batch):
        result = self.inner.export(batch)
        if result == LogRecordExportResult.SUCCESS:
            self.exported += len(batch)
        else:
            self.failed += len(batch)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def to_nanos(rfc3339):
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()) * 10**9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--ca-file")
    parser.add_argument("--client-cert")
    parser.add_argument("--client-key")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        help="NAME=VALUE sent with every export (gRPC metadata or HTTP header), e.g. authorization=Bearer ...",
    )
    args = parser.parse_args()
    scheme = "https" if args.ca_file else "http"
    headers = dict(h.split("=", 1) for h in args.header)

    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        if args.ca_file:
            os.environ["OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE"] = args.ca_file
            if args.client_cert:
                os.environ["OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE"] = args.client_cert
                os.environ["OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY"] = args.client_key
            inner = OTLPLogExporter(
                endpoint=f"https://{args.endpoint}", timeout=args.timeout, headers=headers
            )
        else:
            inner = OTLPLogExporter(
                endpoint=f"http://{args.endpoint}", insecure=True, timeout=args.timeout,
                headers=headers,
            )
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        inner = OTLPLogExporter(
            endpoint=f"{scheme}://{args.endpoint}/v1/logs",
            certificate_file=args.ca_file,
            client_certificate_file=args.client_cert,
            client_key_file=args.client_key,
            timeout=args.timeout,
            headers=headers,
        )
    exporter = CountingExporter(inner)
    provider = LoggerProvider(resource=Resource.create({"service.name": "python-e2e"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("auditcol.e2e")

    for event in json.load(sys.stdin):
        attributes = {
            "audit.type": event["type"],
            "audit.action": event["action"],
            "audit.version": event.get("version", "0.2"),
            "audit.status": event.get("status", "success"),
        }
        for key, value in event.get("metadata", {}).get("actor", {}).items():
            attributes[f"audit.actor.{key}"] = value
        success = event.get("status", "success") == "success"
        logger.emit(
            timestamp=to_nanos(event["timestamp"]),
            severity_number=SeverityNumber.INFO if success else SeverityNumber.WARN,
            severity_text="INFO" if success else "WARN",
            body=event.get("payload"),
            attributes=attributes,
            event_name=f"audit.{event['type']}.{event['action']}",
        )

    provider.force_flush()
    provider.shutdown()
    print(json.dumps({"exported": exporter.exported, "failed": exporter.failed}))
    sys.exit(1 if exporter.failed else 0)


if __name__ == "__main__":
    main()
