#!/usr/bin/env python3
"""Verifies the ARC chain of the message on stdin with dkimpy, an implementation we did not write, and
prints one JSON line: {"cv": "pass"|"fail"|"none", "comment": ...}.

usage: arc_verify.py NAME=RECORD [NAME=RECORD ...]
The key records are given on the command line (NAME as `sel._domainkey.example.org`), and dkimpy's DNS
look-ups are answered from them alone: nothing here touches the real DNS.
"""
import json
import sys

import dkim

from dkim_verify import dnsfunc_from


def main():
    dnsfunc = dnsfunc_from(sys.argv[1:])
    message = sys.stdin.buffer.read()
    try:
        cv, _results, comment = dkim.arc_verify(message, dnsfunc=dnsfunc)
    except dkim.DKIMException as error:
        cv, comment = b"fail", str(error)
    print(json.dumps({"cv": cv.decode() if isinstance(cv, bytes) else str(cv), "comment": str(comment)}))


if __name__ == "__main__":
    main()
