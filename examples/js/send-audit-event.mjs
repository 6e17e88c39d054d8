// Send one audit event to auditcol with the official OpenTelemetry JS SDK,
// over OTLP/HTTP (JSON) to the collector's HTTP port.
//
//   npm install && node send-audit-event.mjs [http://127.0.0.1:4318/v1/logs]
//
// An audit event is an OTLP log record with `audit.type` (the noun) and
// `audit.action` (the verb); the payload is the body; the actor goes in
// `audit.actor.<field>` attributes.
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";

const url = process.argv[2] ?? "http://127.0.0.1:4318/v1/logs";
const exporter = new OTLPLogExporter({ url });
const provider = new LoggerProvider({
  resource: resourceFromAttributes({ "service.name": "flag-admin" }),
  processors: [new SimpleLogRecordProcessor(exporter)],
});

provider.getLogger("audit").emit({
  timestamp: Date.now(),
  body: { key: "dark-mode", enabled: true }, // the payload
  attributes: {
    "audit.type": "flag",
    "audit.action": "updated",
    "audit.actor.email": "kyle@example.com",
  },
});
await provider.forceFlush();
await provider.shutdown();
console.log(`sent flag:updated to ${url}`);
