#!/usr/bin/env python3
"""Writes the mosquitto_conf seed corpus and dictionary: the project's example configs,
one seed per option example of the option table (src/config/options.rs), the configs of the
config unit tests (src/config/tests.rs), and an include_dir case; the dictionary holds every
option name."""
import ast
import hashlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "fuzz" / "corpus" / "mosquitto_conf"
DICT = ROOT / "fuzz" / "dict" / "mosquitto_conf.dict"
LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)


def rust_string(body):
    body = re.sub(r"\\\n\s*", "", body)
    try:
        return ast.literal_eval('"' + body.replace("\n", "\\n") + '"')
    except (ValueError, SyntaxError):
        return None


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    DICT.parent.mkdir(parents=True, exist_ok=True)
    seeds = []
    for path in sorted((ROOT / "config").glob("*.conf")) + sorted((ROOT / "docker").glob("*.conf")):
        seeds.append(path.read_bytes())
    options = (ROOT / "src/config/options.rs").read_text()
    names = set()
    for m in re.finditer(r'spec\(\s*"([^"]+)",\s*\w+,\s*\w+,\s*"((?:[^"\\]|\\.)*)"', options):
        names.add(m.group(1))
        example = rust_string(m.group(2))
        if example:
            seeds.append(b"listener 1883\n" + example.encode() + b"\n")
    tests = (ROOT / "src/config/tests.rs").read_text()
    for m in LITERAL.finditer(tests):
        text = rust_string(m.group(1))
        if text and "\n" in text and len(text) < 2000:
            seeds.append(text.encode())
    seeds.append(b"listener 1883\ninclude_dir /etc/mosquitto/conf.d\n\x00"
                 b"allow_anonymous true\n\x00listener 8883\nprotocol websockets\n")
    for seed in seeds:
        (OUT / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    DICT.write_text("".join(f'"{name}"\n' for name in sorted(names)))
    print(f"{len(seeds)} seeds in {OUT}, {len(names)} words in {DICT}", file=sys.stderr)


if __name__ == "__main__":
    main()
