#!/usr/bin/env python3
"""Writes the seed corpora of the text and file targets from the project's fixtures and
test data: password_file and acl_file (shards/src/authfile), dynsec_file and dynsec_control
(the dynamic-security golden captures), persist_file (the version-1 state file fixture),
websocket and http_api (requests and frames as clients send them)."""
import base64
import hashlib
import json
import os
import pathlib
import re
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"
AUTHFILE = ROOT / "shards/src/authfile"
GOLDEN = ROOT / "shards/src/dynsec/testdata/golden"
LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
MAX_SEED = 8192


def put(target, seed):
    if len(seed) > MAX_SEED:
        return 0
    out = CORPUS / target
    out.mkdir(parents=True, exist_ok=True)
    (out / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    return 1


def multiline_literals(path):
    """String literals of a Rust test file that hold more than one line."""
    text = path.read_text()
    for m in LITERAL.finditer(text):
        body = re.sub(r"\\\n\s*", "", m.group(1))
        if "\\n" in body or "\n" in body:
            try:
                yield bytes(body, "utf-8").decode("unicode_escape").encode("latin-1", "replace")
            except UnicodeDecodeError:
                continue


def authfile():
    n = 0
    for f in ["passwd_pbkdf2.txt", "passwd_sha512.txt", "passwd_commented.txt"]:
        n += put("password_file", (AUTHFILE / "testdata" / f).read_bytes())
    for seed in multiline_literals(AUTHFILE / "password_file_tests.rs"):
        n += put("password_file", seed)
    acl = (AUTHFILE / "testdata/real_broker.acl").read_bytes()
    n += put("acl_file", acl + b"\0client-1\0root\0anon/x")
    for seed in multiline_literals(AUTHFILE / "acl_file_tests.rs"):
        n += put("acl_file", seed + b"\0c1\0u1\0a/b/c")
    return n


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def dynsec():
    n = 0
    for name in ["initial-dynamic-security.json", "final-dynamic-security.json"]:
        n += put("dynsec_file", (GOLDEN / name).read_bytes())
    cases = json.loads((GOLDEN / "config-load-cases.json").read_text())
    n += put("dynsec_file", compact(cases["input"]))
    n += put("dynsec_file", cases["resaved_file_text"].encode())
    requests = []
    for path in sorted(GOLDEN.glob("[0-9]*.json")):
        capture = json.loads(path.read_text())
        form = capture.get("request_format")
        if form == "json":
            requests.append(compact(capture["request"]))
        elif form == "text":
            requests.append(capture["request"].encode())
        elif form == "base64":
            requests.append(base64.b64decode(capture["request_raw_base64"]))
    for request in requests:
        n += put("dynsec_control", request)
    # Sequences: consecutive captures run on one state, as in the golden replay.
    for i in range(0, len(requests) - 3, 4):
        n += put("dynsec_control", b"\0".join(r for r in requests[i:i + 4] if b"\0" not in r))
    return n


def dynsec_dict():
    """Every quoted word of the control and file code (command and key names), for both
    dynamic-security targets."""
    words = set()
    for path in sorted((ROOT / "shards/src/dynsec/control").glob("*.rs")) + [
            ROOT / "shards/src/dynsec/store.rs"]:
        words.update(re.findall(r'"([a-zA-Z]{4,})"', path.read_text()))
    text = "".join(f'"{w}"\n' for w in sorted(words)) + '"true"\n"false"\n"null"\n'
    for target in ["dynsec_control", "dynsec_file"]:
        (ROOT / "fuzz" / "dict" / f"{target}.dict").write_text(text)
    return len(words)


def persist():
    v1 = (ROOT / "shards/src/persist/fixtures/culex-0.1-state.db").read_bytes()
    return put("persist_file", b"\0" + v1) + put("persist_file", b"\1" + v1[32:])


def ws_frame(opcode, payload, fin=True, mask=b"\x11\x22\x33\x44"):
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def websocket():
    upgrade = (b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n")
    origin = b"Origin: http://example.com\r\n"
    connect = bytes.fromhex("101000044d5154540402003c0004") + b"test"
    bodies = [
        b"",
        ws_frame(2, connect),
        ws_frame(2, connect[:5], fin=False) + ws_frame(0, connect[5:]),
        ws_frame(9, b"ping") + ws_frame(2, connect),
        ws_frame(8, b"\x03\xe8bye"),
        ws_frame(8, b""),
        ws_frame(1, b"text"),
        ws_frame(2, b"x" * 300),
        ws_frame(10, b"") + ws_frame(2, b""),
    ]
    n = 0
    for listener, extra in [(0, b""), (2, origin), (1, b"")]:
        for i, body in enumerate(bodies):
            seed = bytes([listener, (len(upgrade) + i * 7) % 256]) + upgrade + extra + b"\r\n" + body
            n += put("websocket", seed)
    n += put("websocket", b"\x01\x00GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    n += put("websocket", b"\x01\x00POST / HTTP/1.1\r\nHost: x\r\n\r\n")
    n += put("websocket", b"\x00\x00" + upgrade.replace(b"13", b"8") + b"\r\n")
    return n


def http_api():
    n = 0
    for line in [b"GET /metrics HTTP/1.1", b"HEAD /healthz HTTP/1.0", b"GET /readyz HTTP/1.1",
                 b"GET /metrics?x=1 HTTP/1.1", b"POST /metrics HTTP/1.1", b"GET /nope HTTP/1.1"]:
        n += put("http_api", line + b"\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n")
    n += put("http_api", b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    return n


def main():
    counts = {"authfile": authfile(), "dynsec": dynsec(), "persist": persist(),
              "websocket": websocket(), "http_api": http_api(), "dynsec words": dynsec_dict()}
    print(" ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
