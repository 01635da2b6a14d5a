"""E-mail over SMTP (smtplib): STARTTLS and login when configured; one connection per send, or one
SMTP session for a dispatcher's whole batch (`session()`: connect, STARTTLS and login once).

The provider-side idempotency key is the `Message-ID`, derived from the message's idempotency key:
SMTP servers do not deduplicate on it, but a receiving system (and our exactly-once test) can see
a re-sent message as the same one (docs/messaging.md, "exactly once").
"""

from __future__ import annotations

import hashlib
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
        self._shared = False
        self._smtp: smtplib.SMTP | None = None

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

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        try:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    @contextmanager
    def session(self) -> Iterator[None]:
        """Sends inside the block share one SMTP connection (opened on the first send, reopened
        if the server drops it), closed with QUIT at the end."""
        self._shared = True
        try:
            yield
        finally:
            self._shared = False
            smtp, self._smtp = self._smtp, None
            if smtp is not None:
                with suppress(smtplib.SMTPException, OSError):
                    smtp.quit()

    def _deliver(self, mail: EmailMessage) -> None:
        if not self._shared:
            with self._connect() as smtp:
                smtp.send_message(mail)
            return
        if self._smtp is not None:
            try:
                self._smtp.send_message(mail)
                return
            except smtplib.SMTPServerDisconnected:  # idle timeout between batches: connect again
                self._smtp = None
        self._smtp = self._connect()
        try:
            self._smtp.send_message(mail)
        except (smtplib.SMTPServerDisconnected, OSError):
            self._smtp = None
            raise

    def send(self, message: Outbound) -> SendResult:
        mail = self.build(message)
        try:
            self._deliver(mail)
        except smtplib.SMTPRecipientsRefused:
            self._reset()
            return SendResult("failed", error="recipient refused by the SMTP server")
        except smtplib.SMTPResponseException as error:
            self._reset()
            transient = 400 <= error.smtp_code < 500
            return SendResult("retry" if transient else "failed", error=f"smtp {error.smtp_code}")
        except (TimeoutError, OSError, smtplib.SMTPException) as error:
            self._smtp = None
            return SendResult("retry", error=f"smtp unreachable: {type(error).__name__}")
        return SendResult("sent", provider_id=mail["Message-ID"])

    def _reset(self) -> None:
        """After a refused transaction the shared session goes on with the next message (RSET)."""
        if self._smtp is not None:
            try:
                self._smtp.rset()
            except (smtplib.SMTPException, OSError):
                self._smtp = None


register_channel("email", lambda settings: EmailChannel(settings.channels))
