"""E-mail over SMTP (smtplib): one connection per send, STARTTLS and login when configured.

The provider-side idempotency key is the `Message-ID`, derived from the message's idempotency key:
SMTP servers do not deduplicate on it, but a receiving system (and our exactly-once test) can see
a re-sent message as the same one (docs/messaging.md, "exactly once").
"""

from __future__ import annotations

import hashlib
import smtplib
from email.message import EmailMessage

from siyu.messaging.channels.base import Outbound, SendResult, register_channel
from siyu.messaging.settings import ChannelSettings


def message_id(idempotency_key: str, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "siyu.local"
    return f"<siyu.{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


class EmailChannel:
    name = "email"

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings

    def build(self, message: Outbound) -> EmailMessage:
        p = message.payload
        mail = EmailMessage()
        mail["From"] = str(p.get("from") or self.settings.smtp_from)
        mail["To"] = str(p["to"])
        mail["Subject"] = str(p.get("subject", ""))
        mail["Message-ID"] = message_id(message.idempotency_key, self.settings.smtp_from)
        if p.get("unsubscribe_url"):
            mail["List-Unsubscribe"] = f"<{p['unsubscribe_url']}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058: clients POST the URL
        mail.set_content(str(p.get("text", "")))
        if p.get("html"):
            mail.add_alternative(str(p["html"]), subtype="html")
        return mail

    def send(self, message: Outbound) -> SendResult:
        s = self.settings
        mail = self.build(message)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password or "")
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused:
            return SendResult("failed", error="recipient refused by the SMTP server")
        except smtplib.SMTPResponseException as error:
            transient = 400 <= error.smtp_code < 500
            return SendResult("retry" if transient else "failed", error=f"smtp {error.smtp_code}")
        except (TimeoutError, OSError, smtplib.SMTPException) as error:
            return SendResult("retry", error=f"smtp unreachable: {type(error).__name__}")
        return SendResult("sent", provider_id=mail["Message-ID"])


register_channel("email", lambda settings: EmailChannel(settings.channels))
