#!/usr/bin/env python3
"""Submits the message on stdin (after a first line holding the password) with smtplib over TLS, and
prints what happened as JSON.

usage: smtp_submit.py HOST PORT MODE CAFILE USER FROM TO [TO ...]
MODE: starttls (587: STARTTLS, AUTH PLAIN), tls (465: implicit TLS, AUTH LOGIN),
      starttls-noauth (STARTTLS, no AUTH), mx (port 25: STARTTLS, no AUTH)
The server certificate is verified against CAFILE, for the name 127.0.0.1.
"""
import json
import smtplib
import ssl
import sys


def features(smtp):
    return sorted(k.upper() + ("=" + v if v and k.lower() == "auth" else "") for k, v in smtp.esmtp_features.items())


def main():
    host, port, mode, cafile, user, sender, *recipients = sys.argv[1:]
    password = sys.stdin.buffer.readline().decode().rstrip("\n")
    message = sys.stdin.buffer.read()
    context = ssl.create_default_context(cafile=cafile)
    result = {"features_before_tls": [], "features": [], "outcome": "ok", "code": 0, "text": ""}
    stage = "connect"
    try:
        if mode == "tls":
            smtp = smtplib.SMTP_SSL(host, int(port), local_hostname="client.test", context=context, timeout=60)
            smtp.ehlo()
        else:
            smtp = smtplib.SMTP(host, int(port), local_hostname="client.test", timeout=60)
            smtp.ehlo()
            result["features_before_tls"] = features(smtp)
            stage = "starttls"
            smtp.starttls(context=context)
            smtp.ehlo()
        result["features"] = features(smtp)
        if mode in ("starttls", "tls"):
            stage = "auth"
            if mode == "tls":
                smtp.user, smtp.password = user, password
                smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
            else:
                smtp.login(user, password)
        stage = "send"
        # As mail programs do: 8-bit text is declared (RFC 6152) where the server takes it.
        eight_bit = any(b >= 0x80 for b in message) and smtp.has_extn("8bitmime")
        refused = smtp.sendmail(sender, recipients, message, mail_options=["BODY=8BITMIME"] if eight_bit else [])
        if refused:
            result.update(outcome="partly refused", text=json.dumps({r: c for r, (c, _) in refused.items()}))
        smtp.quit()
    except smtplib.SMTPRecipientsRefused as error:
        code = min(c for c, _ in error.recipients.values())
        result.update(outcome="rcpt refused", code=code, text=json.dumps({r: c for r, (c, _) in error.recipients.items()}))
    except smtplib.SMTPResponseException as error:
        result.update(outcome=f"{stage} refused", code=error.smtp_code, text=error.smtp_error.decode("latin-1"))
    except smtplib.SMTPNotSupportedError as error:
        result.update(outcome=f"{stage} not supported", text=str(error))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
