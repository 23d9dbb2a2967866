#!/usr/bin/env python3
"""Runs one POP3 session with poplib and prints what it saw, as JSON.

usage: pop3_session.py HOST PORT USER END   (password on stdin; END: quit, dele-quit, dele-drop)

Messages are printed as Latin-1 strings so that every octet survives the JSON round trip.
"""
import json
import poplib
import sys


def main():
    host, port, user, end = sys.argv[1:]
    password = sys.stdin.readline().rstrip("\n")
    pop = poplib.POP3(host, int(port), timeout=60)
    pop.user(user)
    pop.pass_(password)
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
    if end in ("dele-quit", "dele-drop"):
        for number in range(1, count + 1):
            pop.dele(number)
    if end == "dele-drop":
        pop.sock.close()
    else:
        result["quit"] = pop.quit().decode()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
