#!/usr/bin/env python3
"""Runs one ManageSieve session with the `managesieve` library (PyPI) and prints what it saw, as JSON.

usage: managesieve_session.py HOST PORT CAFILE  (stdin: {"user", "password", "steps"})

The session starts with STARTTLS (verifying the server against CAFILE), then AUTHENTICATE PLAIN, then
runs each step, `["method", args...]`: putscript NAME TEXT, checkscript TEXT, setactive NAME,
listscripts, getscript NAME, renamescript OLD NEW, deletescript NAME, havespace NAME SIZE. It prints
the capabilities seen before and after STARTTLS and, per step, {"status", "code", "text", "data"}.
The library has no CHECKSCRIPT or RENAMESCRIPT methods (both came after its RFC draft); those two go
through its own generic command path, so their framing is still the library's.
"""
import json
import ssl
import sys

import managesieve


def main():
    host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    request = json.load(sys.stdin)
    # The library builds its own TLS context: make it trust the test certificate.
    default_context = ssl.create_default_context
    ssl.create_default_context = lambda *a, **k: default_context(cafile=cafile)
    managesieve.commands.setdefault(b"CHECKSCRIPT", ("AUTH",))
    managesieve.commands.setdefault(b"RENAMESCRIPT", ("AUTH",))

    sieve = managesieve.MANAGESIEVE(host, port)
    before = {"capabilities": list(sieve.capabilities), "sasl": list(sieve.loginmechs), "tls": sieve.supports_tls}
    status, _ = sieve.starttls()
    after = {"capabilities": list(sieve.capabilities), "sasl": list(sieve.loginmechs), "tls": sieve.supports_tls}
    login = sieve.authenticate("PLAIN", request["user"], request["password"])
    results = []
    for method, *args in request["steps"]:
        data = None
        if method == "putscript":
            status = sieve.putscript(args[0], args[1])
        elif method == "checkscript":
            status = sieve._simple_command(b"CHECKSCRIPT", managesieve.sieve_string(args[0]))
        elif method == "renamescript":
            status = sieve._simple_command(
                b"RENAMESCRIPT", managesieve.sieve_name(args[0]), managesieve.sieve_name(args[1])
            )
        elif method == "havespace":
            status = sieve.havespace(args[0], int(args[1]))
        elif method == "listscripts":
            status, data = sieve.listscripts()
            data = [[name, active] for name, active in data] if status == "OK" else None
        elif method == "getscript":
            status, data = sieve.getscript(args[0])
            data = data if status == "OK" else None
        else:
            status = getattr(sieve, method)(*args)
        code = sieve.response_code
        text = sieve.response_text
        results.append({
            "status": status,
            "code": code.decode() if isinstance(code, bytes) else code,
            "text": text.decode() if isinstance(text, bytes) else text,
            "data": data,
        })
    sieve.logout()
    print(json.dumps({"before_tls": before, "after_tls": after, "login": login, "steps": results}))


if __name__ == "__main__":
    main()
