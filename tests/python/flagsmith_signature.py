"""Sign a request body as Flagsmith's documentation shows ("Validating Signature").

Usage: flagsmith_signature.py SECRET < body

Prints the lower-case hex HMAC-SHA256 that a receiver compares with the
X-Flagsmith-Signature header. The lines between the markers are the
documentation's snippet, unchanged but for indentation; `secret` and
`request_body` are what the snippet leaves to the reader.
"""
import sys

secret = sys.argv[1]
request_body = sys.stdin.buffer.read()

# --- the snippet of the Flagsmith documentation ---
import hmac
import hashlib

expected_signature = hmac.new(
    key=secret.encode(),
    msg=request_body,
    digestmod=hashlib.sha256,
).hexdigest()
# --- end of the snippet ---

print(expected_signature)
