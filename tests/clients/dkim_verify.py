#!/usr/bin/env python3
"""Verifies every DKIM-Signature of the message on stdin with dkimpy, an implementation we did not write,
and prints one JSON line: {"signatures": [{"d": ..., "s": ..., "a": ..., "ok": true|false}, ...]}.

usage: dkim_verify.py NAME=RECORD [NAME=RECORD ...]
The key records are given on the command line (NAME as `sel._domainkey.example.org`), and dkimpy's DNS
look-ups are answered from them alone: nothing here touches the real DNS.
"""
import json
import re
import sys

import dkim


def dnsfunc_from(args):
    """dkimpy's DNS look-up, answered from NAME=RECORD arguments alone (shared with arc_verify.py)."""
    records = {}
    for arg in args:
        name, _, value = arg.partition("=")
        records[name.lower().rstrip(".")] = value.encode()

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return records.get(name.lower().rstrip("."))

    return dnsfunc


def main():
    dnsfunc = dnsfunc_from(sys.argv[1:])
    message = sys.stdin.buffer.read()
    header = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    unfolded = re.sub(r"\r\n[ \t]", " ", header)
    fields = [line.split(":", 1)[1] for line in unfolded.split("\r\n") if line.lower().startswith("dkim-signature:")]
    signatures = []
    for index, value in enumerate(fields):
        tags = dict(
            (k.strip(), v.strip())
            for k, _, v in (t.partition("=") for t in value.split(";") if "=" in t)
        )
        try:
            ok = dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc)
        except dkim.DKIMException as error:
            ok = False
            tags["error"] = str(error)
        signatures.append({"d": tags.get("d"), "s": tags.get("s"), "a": tags.get("a"), "ok": bool(ok),
                           "error": tags.get("error")})
    print(json.dumps({"signatures": signatures}))


if __name__ == "__main__":
    main()
