#!/usr/bin/env python3
"""A JMAP session with jmapc (PyPI), a client we did not write: it reads, searches and sends.

Usage: jmapc_session.py HOST:PORT USER PASSWORD RECIPIENT SEARCH_WORD CAFILE

jmapc always speaks HTTPS to https://HOST:PORT/.well-known/jmap; the server's certificate is verified
against CAFILE (the test stack's own), so HOST must be a name the certificate carries.

It prints one JSON object: the inbox's id and counts, the newest emails' subjects (Email/query and
Email/get chained by a result reference), the ids a text search found, and the outcome of sending a
message to RECIPIENT (Email/set of a draft, then EmailSubmission/set moving it from Drafts to Sent).
"""

import json
import os
import sys

from jmapc import (
    Client,
    Comparator,
    Email,
    EmailAddress,
    EmailBodyPart,
    EmailBodyValue,
    EmailQueryFilterCondition,
    EmailSubmission,
    Envelope,
    Address,
    MailboxQueryFilterCondition,
    Ref,
)
from jmapc.methods import (
    EmailGet,
    EmailQuery,
    EmailSet,
    EmailSubmissionSet,
    IdentityGet,
    MailboxGet,
    MailboxQuery,
)


def main() -> None:
    host, user, password, recipient, word, cafile = sys.argv[1:7]
    # requests takes REQUESTS_CA_BUNDLE over a session's own setting.
    os.environ["REQUESTS_CA_BUNDLE"] = cafile
    client = Client.create_with_password(host=host, user=user, password=password)
    out = {"account": client.account_id}

    # Read: the inbox, then its newest emails, Email/get taking Email/query's ids by reference.
    responses = client.request(
        [
            MailboxQuery(filter=MailboxQueryFilterCondition(role="inbox")),
            MailboxGet(ids=Ref("/ids")),
        ],
        raise_errors=True,
    )
    inbox = responses[1].response.data[0]
    out["inbox"] = {"id": inbox.id, "name": inbox.name, "total": inbox.total_emails, "unread": inbox.unread_emails}
    responses = client.request(
        [
            EmailQuery(
                filter=EmailQueryFilterCondition(in_mailbox=inbox.id),
                sort=[Comparator(property="receivedAt", is_ascending=False)],
                limit=10,
            ),
            EmailGet(ids=Ref("/ids"), properties=["id", "subject", "from", "receivedAt", "preview"]),
        ],
        raise_errors=True,
    )
    out["newest"] = [email.subject for email in responses[1].response.data]

    # Search.
    found = client.request(EmailQuery(filter=EmailQueryFilterCondition(text=word)), raise_errors=True)
    out["search"] = list(found.ids)

    # Send: a draft in Drafts, submitted, and moved to Sent with $seen once the queue has it.
    mailboxes = client.request(MailboxGet(ids=None), raise_errors=True).data
    drafts = next(m.id for m in mailboxes if m.role == "drafts")
    sent = next(m.id for m in mailboxes if m.role == "sent")
    identity = client.request(IdentityGet(), raise_errors=True).data[0]
    responses = client.request(
        [
            EmailSet(
                create={
                    "draft": Email(
                        mail_from=[EmailAddress(name="JMAP Sender", email=identity.email)],
                        to=[EmailAddress(email=recipient)],
                        subject="Sent by jmapc",
                        keywords={"$draft": True},
                        mailbox_ids={drafts: True},
                        body_values={"body": EmailBodyValue(value="Hello from an independent JMAP client.\n")},
                        text_body=[EmailBodyPart(part_id="body", type="text/plain")],
                    )
                }
            ),
            EmailSubmissionSet(
                on_success_update_email={
                    "#sendIt": {f"mailboxIds/{drafts}": None, f"mailboxIds/{sent}": True, "keywords/$draft": None}
                },
                create={
                    "sendIt": EmailSubmission(
                        email_id="#draft",
                        identity_id=identity.id,
                        envelope=Envelope(
                            mail_from=Address(email=identity.email),
                            rcpt_to=[Address(email=recipient)],
                        ),
                    )
                },
            ),
        ],
        raise_errors=True,
    )
    created = responses[0].response.created or {}
    submitted = responses[1].response.created or {}
    out["draft"] = created["draft"].id if "draft" in created else None
    out["submission"] = submitted["sendIt"].id if "sendIt" in submitted else None
    out["responses"] = [r.id for r in responses]
    email = client.request(EmailGet(ids=[out["draft"]], properties=["mailboxIds", "keywords"]), raise_errors=True)
    out["sent_mailboxes"] = sorted(email.data[0].mailbox_ids or {})
    out["sent_mailbox"] = sent
    print(json.dumps(out))


if __name__ == "__main__":
    main()
