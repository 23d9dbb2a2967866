#!/usr/bin/env python3
"""An IMAP client speaking COMPRESS=DEFLATE (RFC 4978) over a bare socket, with Python's zlib as the other
end of the server's raw DEFLATE streams, and counting the bytes that cross the wire.

usage: imap_compress.py HOST PORT [--tls implicit --cafile FILE]
       stdin, JSON: {"user": ..., "password": ..., "mode": "fetch" | "corrupt" | "bomb"}

fetch:   LOGIN, COMPRESS DEFLATE, SELECT INBOX, UID FETCH 1 BODY.PEEK[], COMPRESS again, LOGOUT.
corrupt: LOGIN, COMPRESS DEFLATE, then bytes that are not DEFLATE; reads what comes back until the
         server closes.
bomb:    LOGIN, COMPRESS DEFLATE, then a few hundred bytes that inflate to a 256 KiB command line (small,
         so that the server has read all of it when it closes, and the close is not a reset);
         reads what comes back until the server closes.

Prints a JSON object: "compress" (the answer to COMPRESS, plain), "lines" (every inflated line after
it, in order), "wire" and "plain" (bytes received while the FETCH was answered, on the wire and
inflated), "closed" (the server closed the connection).
"""
import argparse
import json
import socket
import ssl
import sys
import zlib


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.inflater = None
        self.deflater = None
        self.wire = 0
        self.plain = 0
        self.closed = False

    def recv(self):
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return False
        self.wire += len(data)
        if self.inflater is not None:
            data = self.inflater.decompress(data)
        self.plain += len(data)
        self.buffer += data
        return True

    def line(self):
        while b"\r\n" not in self.buffer:
            if not self.recv():
                return None
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read_literal(self, size):
        while len(self.buffer) < size:
            if not self.recv():
                return None
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def send(self, data):
        if self.deflater is not None:
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def command(self, tag, text):
        """Sends one command; the lines up to its tagged answer (a literal's bytes are counted, not kept)."""
        self.send(f"{tag} {text}\r\n".encode())
        lines = []
        while True:
            line = self.line()
            if line is None:
                return lines
            if line.endswith(b"}") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1 : -1])
                literal = self.read_literal(size)
                line = line + b" <literal of %d octets>" % (len(literal or b""))
                line += self.line() or b""
            lines.append(line.decode("latin-1"))
            if line.startswith(tag.encode() + b" "):
                return lines

    def rest(self):
        lines = []
        while True:
            line = self.line()
            if line is None:
                return lines
            lines.append(line.decode("latin-1"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--tls")
    parser.add_argument("--cafile")
    args = parser.parse_args()
    request = json.load(sys.stdin)
    sock = socket.create_connection((args.host, args.port), timeout=30)
    if args.tls == "implicit":
        context = ssl.create_default_context(cafile=args.cafile)
        context.check_hostname = False
        sock = context.wrap_socket(sock)
    conn = Conn(sock)
    result = {"greeting": (conn.line() or b"").decode("latin-1")}
    result["login"] = conn.command("a1", f'LOGIN "{request["user"]}" "{request["password"]}"')
    answer = conn.command("a2", "COMPRESS DEFLATE")
    result["compress"] = answer
    if not answer or not answer[-1].startswith("a2 OK"):
        print(json.dumps(result))
        return
    conn.inflater = zlib.decompressobj(wbits=-15)
    conn.deflater = zlib.compressobj(wbits=-15)
    mode = request["mode"]
    lines = []
    if mode == "fetch":
        lines += conn.command("a3", "SELECT INBOX")
        wire, plain = conn.wire, conn.plain
        lines += conn.command("a4", "UID FETCH 1 BODY.PEEK[]")
        result["wire"], result["plain"] = conn.wire - wire, conn.plain - plain
        lines += conn.command("a5", "COMPRESS DEFLATE")
        lines += conn.command("a6", "LOGOUT")
    elif mode == "corrupt":
        conn.sock.sendall(b"\xff" * 64)
        lines += conn.rest()
    elif mode == "bomb":
        bomb = zlib.compressobj(wbits=-15)
        conn.sock.sendall(bomb.compress(b"a3 NOOP " + b"x" * (256 * 1024)) + bomb.flush(zlib.Z_SYNC_FLUSH))
        try:
            lines += conn.rest()
        except ConnectionResetError:
            conn.closed = True
    result["lines"] = lines
    result["closed"] = conn.closed or conn.line() is None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
