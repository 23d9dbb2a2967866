#!/usr/bin/env python3
"""Sends the message on stdin with smtplib and prints what the server said, as JSON.

usage: smtp_send.py HOST PORT FROM TO [TO ...]
"""
import json
import smtplib
import sys


class RecordingSMTP(smtplib.SMTP):
    """smtplib.SMTP that remembers the reply to the end of DATA."""

    last_data_reply = (0, "")

    def data(self, msg):
        code, text = super().data(msg)
        self.last_data_reply = (code, text.decode("latin-1"))
        return code, text


def main():
    host, port, sender, *recipients = sys.argv[1:]
    message = sys.stdin.buffer.read()
    result = {}
    try:
        with RecordingSMTP(host, int(port), local_hostname="client.test", timeout=60) as smtp:
            refused = smtp.sendmail(sender, recipients, message)
            result = {"outcome": "accepted", "refused": {r: c for r, (c, _) in refused.items()}}
            # sendmail does not return the end-of-data reply; RecordingSMTP keeps it.
            result["code"], result["text"] = smtp.last_data_reply
    except smtplib.SMTPRecipientsRefused as error:
        result = {"outcome": "recipients_refused", "refused": {r: c for r, (c, _) in error.recipients.items()}}
    except smtplib.SMTPResponseException as error:
        result = {"outcome": "refused", "code": error.smtp_code, "text": error.smtp_error.decode("latin-1")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
