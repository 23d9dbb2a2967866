#!/usr/bin/env python3
"""Runs one IMAP session with imaplib, step by step, and prints every reply as JSON.

usage: imap_session.py HOST PORT [--tls starttls|implicit --cafile FILE]
       steps on stdin, a JSON list: ["method", arg, ...] calls imaplib.IMAP4.method(*args);
       ["idle", seconds, marker?] sends IDLE, collects untagged lines until one arrives or the time is up,
       sends DONE; with a marker path, appends a line to that file once the server has accepted the IDLE;
       ["mark", path] appends a line to a file; ["await_file", path, seconds] waits until the file exists;
       ["raw", line, tag?] sends one line and collects lines until the reply tagged with tag (the line's
       first word by default) or a continuation request;
       ["untagged", name] takes the untagged responses imaplib collected under that name (EXISTS, ...).

Each step's result is [type, data] with bytes as Latin-1 strings (every octet survives the JSON), or
["error", message] when imaplib raised; the session goes on after an error.
"""
import argparse
import json
import os
import imaplib
import ssl
import sys
import time


def plain(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def mark(path):
    with open(path, "a") as marker:
        marker.write("mark\n")


def await_file(path, seconds):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return ["NO", [f"{path} never appeared"]]
        time.sleep(0.02)
    return ["OK", []]


def idle(imap, seconds, marker=None):
    tag = imap._new_tag().decode()
    imap.send(f"{tag} IDLE\r\n".encode())
    lines = []
    first = imap.readline().decode("latin-1").rstrip("\r\n")
    if not first.startswith("+"):
        return ["NO", [first]]
    if marker:
        mark(marker)
    started = time.monotonic()
    imap.sock.settimeout(seconds)
    try:
        line = imap.readline().decode("latin-1").rstrip("\r\n")
        lines.append(line)
        lines.append(f"after {time.monotonic() - started:.3f}")
    except (TimeoutError, OSError):
        lines.append("timeout")
    imap.sock.settimeout(60)
    imap.send(b"DONE\r\n")
    while True:
        line = imap.readline().decode("latin-1").rstrip("\r\n")
        if line.startswith(tag):
            return [line.split(" ")[1], lines]
        lines.append(line)


def raw(imap, line, tag=None):
    """Sends a line; reads until the reply tagged with `tag` (the line's first word unless given), or a
    continuation request ("+"), whichever first."""
    tag = tag or line.split(" ", 1)[0]
    imap.send(line.encode() + b"\r\n")
    lines = []
    while True:
        raw_line = imap.readline()
        if not raw_line:  # the server closed the connection
            return ["OK", lines]
        reply = raw_line.decode("latin-1").rstrip("\r\n")
        lines.append(reply)
        if reply.startswith(tag + " ") or reply.startswith("+"):
            return ["OK", lines]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--tls", choices=["starttls", "implicit"])
    parser.add_argument("--cafile")
    args = parser.parse_args()
    steps = json.load(sys.stdin)
    context = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    if args.tls == "implicit":
        imap = imaplib.IMAP4_SSL(args.host, args.port, ssl_context=context, timeout=60)
    else:
        imap = imaplib.IMAP4(args.host, args.port, timeout=60)
    results = [["OK", [plain(imap.welcome)]]]
    for step in steps:
        name, rest = step[0], step[1:]
        try:
            if name == "idle":
                results.append(idle(imap, *rest))
            elif name == "mark":
                mark(*rest)
                results.append(["OK", []])
            elif name == "await_file":
                results.append(await_file(*rest))
            elif name == "raw":
                results.append(raw(imap, *rest))
            elif name == "untagged":
                results.append(["OK", plain(imap.untagged_responses.pop(rest[0], []))])
            elif name == "starttls":
                results.append(plain(list(imap.starttls(ssl_context=context))))
            elif name == "capabilities":
                results.append(["OK", list(imap.capabilities)])
            else:
                rest = [a.encode("latin-1") if isinstance(a, str) and name == "append" and i == 3 else a
                        for i, a in enumerate(rest)]
                results.append(plain(list(getattr(imap, name)(*rest))))
        except Exception as error:  # noqa: BLE001 - the test reads the error
            results.append(["error", str(error)])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
