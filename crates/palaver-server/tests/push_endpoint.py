"""A push service stand-in for tests/api/notifications.rs (feature `push-tests`).

Listens on 127.0.0.1 (a free port, printed as `listening <port>` on stdout) and plays
the part of a browser's push service (RFC 8030) for subscriptions whose keys the test
hands it, checking each push as a real service and browser would:

- `POST /_keys/<name>` with JSON `{"private_key": <base64url P-256 scalar>, "auth":
  <base64url 16 bytes>}`: the subscription's private half (the test made the key pair).
- `POST /push/<name>`: a push. The `Authorization: vapid t=<JWT>, k=<key>` header is
  verified (RFC 8292: an ES256 JWT signed by `k`, `aud` this server's origin, `exp` in the
  future and at most 24 hours ahead, `sub` a mailto: or https:/http: URL), the body is
  decrypted with PyPI's `http_ece` (RFC 8291 / RFC 8188 aes128gcm) with the subscription's
  private key and auth secret, and the plaintext is recorded. Answers 201. A push that
  fails a check is recorded with its `error` and answered 400.
- `POST /gone/<name>` and `POST /missing/<name>`: recorded, answered 410 and 404 (an
  expired or unsubscribed subscription).
- `GET /_received/<name>`: JSON list of what came for `<name>`, each `{"path", "status",
  "headers", "k", "claims", "plaintext" (text), "error"}`.
"""

import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

LOCK = threading.Lock()
KEYS = {}
RECEIVED = {}


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_vapid(header, origin):
    """Verifies the Authorization header; returns (k, claims) or raises ValueError."""
    if not header or not header.startswith("vapid "):
        raise ValueError("no vapid Authorization header: %r" % header)
    params = {}
    for part in header[len("vapid "):].split(","):
        name, _, value = part.strip().partition("=")
        params[name] = value
    token, k = params.get("t"), params.get("k")
    if not token or not k:
        raise ValueError("vapid header without t= and k=")
    head, payload, signature = token.split(".")
    if json.loads(b64url(head)) != {"typ": "JWT", "alg": "ES256"}:
        raise ValueError("JWT header %r" % b64url(head))
    raw = b64url(signature)
    if len(raw) != 64:
        raise ValueError("ES256 signature of %d bytes" % len(raw))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url(k))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, (head + "." + payload).encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("the JWT signature does not verify with k")
    claims = json.loads(b64url(payload))
    if claims.get("aud") != origin:
        raise ValueError("aud %r, expected %r" % (claims.get("aud"), origin))
    now = time.time()
    if not (now < claims.get("exp", 0) <= now + 24 * 3600):
        raise ValueError("exp %r not within the next 24 hours" % claims.get("exp"))
    sub = claims.get("sub", "")
    if not sub.startswith(("mailto:", "https://", "http://")):
        raise ValueError("sub %r" % sub)
    return k, claims


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/_received/"):
            name = self.path[len("/_received/"):]
            with LOCK:
                self.answer(200, RECEIVED.get(name, []))
        else:
            self.answer(404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        kind, _, name = self.path.lstrip("/").partition("/")
        if kind == "_keys":
            keys = json.loads(body)
            private = ec.derive_private_key(
                int.from_bytes(b64url(keys["private_key"]), "big"), ec.SECP256R1()
            )
            with LOCK:
                KEYS[name] = (private, b64url(keys["auth"]))
            return self.answer(204)
        status = {"push": 201, "gone": 410, "missing": 404}.get(kind)
        if status is None:
            return self.answer(404)
        entry = {
            "path": self.path,
            "status": status,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "k": None,
            "claims": None,
            "plaintext": None,
            "error": None,
        }
        try:
            origin = "http://%s:%d" % self.server.server_address[:2]
            entry["k"], entry["claims"] = check_vapid(self.headers.get("Authorization"), origin)
            if self.headers.get("Content-Encoding") != "aes128gcm":
                raise ValueError("Content-Encoding %r" % self.headers.get("Content-Encoding"))
            with LOCK:
                private, auth = KEYS[name]
            plaintext = http_ece.decrypt(
                body, private_key=private, auth_secret=auth, version="aes128gcm"
            )
            entry["plaintext"] = plaintext.decode("utf-8")
        except Exception as e:  # recorded for the test to show
            entry["error"] = "%s: %s" % (type(e).__name__, e)
            entry["status"] = status = 400
        with LOCK:
            RECEIVED.setdefault(name, []).append(entry)
        self.answer(status, {} if status == 201 else {"error": entry["error"]})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
