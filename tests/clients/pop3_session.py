#!/usr/bin/env python3
"""Runs one POP3 session with poplib and prints what it saw, as JSON.

usage: pop3_session.py HOST PORT USER END [--tls stls|implicit --cafile FILE] [--auth plain]
       (password on stdin; END: quit, dele-quit, dele-drop, hold: log in, print, then wait for stdin EOF)

Messages are printed as Latin-1 strings so that every octet survives the JSON round trip. A refused
login prints {"error": "<server reply>"}.
"""
import argparse
import base64
import json
import poplib
import ssl
import sys


def connect(args):
    context = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    if args.tls == "implicit":
        return poplib.POP3_SSL(args.host, args.port, context=context, timeout=60)
    pop = poplib.POP3(args.host, args.port, timeout=60)
    if args.tls == "stls":
        pop.stls(context=context)
    return pop


def login(pop, args, password):
    if args.auth == "plain":
        token = base64.b64encode(f"\0{args.user}\0{password}".encode()).decode()
        pop._shortcmd(f"AUTH PLAIN {token}")
    else:
        pop.user(args.user)
        pop.pass_(password)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("user")
    parser.add_argument("end", choices=["quit", "dele-quit", "dele-drop", "hold"])
    parser.add_argument("--tls", choices=["stls", "implicit"])
    parser.add_argument("--cafile")
    parser.add_argument("--auth", choices=["plain"])
    args = parser.parse_args()
    password = sys.stdin.readline().rstrip("\n")
    pop = connect(args)
    try:
        login(pop, args, password)
    except poplib.error_proto as error:
        print(json.dumps({"error": error.args[0].decode("latin-1")}))
        return
    count, size = pop.stat()
    listing = [line.split() for line in pop.list()[1]]
    uidl = [line.split() for line in pop.uidl()[1]]
    messages = []
    for number in range(1, count + 1):
        _, lines, _ = pop.retr(number)
        messages.append(b"".join(line + b"\r\n" for line in lines).decode("latin-1"))
    result = {
        "stat": [count, size],
        "list": [[int(n), int(s)] for n, s in listing],
        "uidl": [[int(n), u.decode()] for n, u in uidl],
        "messages": messages,
        "quit": None,
    }
    if args.end == "hold":
        print(json.dumps(result), flush=True)
        sys.stdin.read()
        return
    if args.end in ("dele-quit", "dele-drop"):
        for number in range(1, count + 1):
            pop.dele(number)
    if args.end == "dele-drop":
        pop.sock.close()
    else:
        result["quit"] = pop.quit().decode()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
