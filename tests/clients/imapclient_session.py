#!/usr/bin/env python3
"""Reads a mailbox with IMAPClient (PyPI), an IMAP response parser independent of ours, and prints what
it understood as JSON.

usage: imapclient_session.py HOST PORT USER structure      (password on stdin)
           -> [{"uid", "flags", "subject", "from": [[name, mailbox, host]], "body": <tree>}, ...]
       imapclient_session.py HOST PORT USER idle SECONDS MARKER  -> {"responses": [...]} from IDLE,
           appending a line to MARKER once the server has accepted the IDLE
"""
import email.header
import json
import sys

from imapclient import IMAPClient


def text(value):
    if value is None:
        return None
    raw = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return str(email.header.make_header(email.header.decode_header(raw)))


def tree(body):
    if body.is_multipart:
        parts, subtype = body[0], body[1]
        return {"multipart": text(subtype).lower(), "parts": [tree(p) for p in parts]}
    return {"type": f"{text(body[0])}/{text(body[1])}".lower(), "size": body[6]}


def main():
    host, port, user, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    password = sys.stdin.read()
    client = IMAPClient(host, port=port, ssl=False, timeout=60)
    client.login(user, password)
    client.select_folder("INBOX")
    if mode == "idle":
        client.idle()
        with open(sys.argv[6], "a") as marker:
            marker.write("idling\n")
        responses = client.idle_check(timeout=float(sys.argv[5]))
        client.idle_done()
        print(json.dumps({"responses": [[r if isinstance(r, int) else text(r) for r in resp] for resp in responses]}))
    else:
        out = []
        for uid, data in sorted(client.fetch(client.search("ALL"), ["ENVELOPE", "BODYSTRUCTURE", "FLAGS"]).items()):
            envelope = data[b"ENVELOPE"]
            out.append({
                "uid": uid,
                "flags": [text(f) for f in data[b"FLAGS"]],
                "subject": text(envelope.subject),
                "from": [[text(a.name), text(a.mailbox), text(a.host)] for a in (envelope.from_ or [])],
                "body": tree(data[b"BODYSTRUCTURE"]),
            })
        print(json.dumps(out))
    client.logout()


if __name__ == "__main__":
    main()
