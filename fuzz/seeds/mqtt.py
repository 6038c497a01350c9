#!/usr/bin/env python3
"""Writes the mqtt_decode seed corpus from the codec's byte-vector tests (golden and
malformed tables): each vector once per protocol the test names for it, as
[protocol selector, size limit selector, bytes...] (see fuzz_targets/mqtt_decode.rs)."""
import hashlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "fuzz" / "corpus" / "mqtt_decode"
SOURCES = ["golden_test.rs", "malformed_test.rs"]
LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
TOKEN = re.compile(r"^(?:[0-9A-Fa-f]{2}|\||'[^']*')$")
PROTOCOLS = [("Protocol::V311", 2), ("Protocol::V31", 1), ("Protocol::V5", 3),
             ("V31", 1), ("V3", 2), ("V5", 3), ("NONE", 0)]


def vector(text):
    text = re.sub(r"\\\n\s*", "", text)
    tokens = re.findall(r"'[^']*'|\S+", text)
    if not tokens or not all(TOKEN.match(t) for t in tokens) or tokens[0] == "|":
        return None
    out = bytearray()
    for t in tokens:
        if t == "|":
            continue
        out += t[1:-1].encode() if t.startswith("'") else bytes([int(t, 16)])
    return bytes(out)


def protocol_before(source, at):
    window = source[max(0, at - 400):at]
    best = (-1, 2)
    for name, selector in PROTOCOLS:
        for m in re.finditer(r"\b" + re.escape(name) + r"\b", window):
            if m.start() > best[0]:
                best = (m.start(), selector)
    return best[1]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    count = 0
    for name in SOURCES:
        source = (ROOT / "shards/src/mqtt/packet" / name).read_text()
        for m in LITERAL.finditer(source):
            data = vector(m.group(1))
            if data is None:
                continue
            selectors = {protocol_before(source, m.start())}
            if data[0] >> 4 == 1:
                selectors.add(0)  # a CONNECT is also what a new connection sends
            for selector in sorted(selectors):
                seed = bytes([selector, 0]) + data
                (OUT / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
                count += 1
    print(f"{count} seeds in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
