"""A webhook endpoint that checks every request's signature the way
Flagsmith's documentation shows ("Validating Signature").

Usage: webhook_sink.py SECRET HEADER OUT [PORT]

Listens on 127.0.0.1, on PORT or a port the OS chooses, and prints that
port on stdout. For each POST it appends one JSON line to OUT:
{"valid": <the snippet's verdict>, "body": <the body as text>}, and answers
200 when the signature is valid, 401 otherwise. The lines between the
markers are the documentation's snippet, unchanged but for indentation;
`secret`, `request_body` and `request` are what the snippet leaves to the
reader.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

secret = sys.argv[1]
header = sys.argv[2].lower()
out = open(sys.argv[3], "a", encoding="utf-8")


def signature_is_valid(request_body, request):
    # --- the snippet of the Flagsmith documentation ---
    import hmac
    import hashlib

    expected_signature = hmac.new(
        key=secret.encode(),
        msg=request_body,
        digestmod=hashlib.sha256,
    ).hexdigest()

    received_signature = request["headers"]["x-flagsmith-signature"]
    return hmac.compare_digest(expected_signature, received_signature) is True
    # --- end of the snippet (but for `return`) ---


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        # The snippet reads the Flagsmith header; other products' headers
        # carry the same signature under their own name.
        request = {"headers": {"x-flagsmith-signature": self.headers.get(header, "")}}
        valid = signature_is_valid(body, request)
        out.write(json.dumps({"valid": valid, "body": body.decode("utf-8")}) + "\n")
        out.flush()
        self.send_response(200 if valid else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A sender killed mid-request (the crash tests do that) is not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
server = Server(("127.0.0.1", port), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
