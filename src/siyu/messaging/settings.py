"""Channel settings (`SIYU_SMTP_*`, `SIYU_SMS_*`, `SIYU_WECHAT_*`, `SIYU_MESSAGING_*`), read once with
the rest of `siyu.config.Settings` (its `channels` field). No secret has a default that works."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChannelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIYU_", env_file=".env", extra="ignore")

    smtp_host: str = Field(default="127.0.0.1", description="SMTP server for e-mail")
    smtp_port: int = Field(default=25, description="SMTP port")
    smtp_from: str = Field(default="siyu@localhost", description="From address of marketing/transactional mail")
    smtp_user: str | None = Field(default=None, description="SMTP login (with SIYU_SMTP_PASSWORD)")
    smtp_password: str | None = Field(default=None, description="SMTP password")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection with STARTTLS")
    smtp_timeout: float = Field(default=10.0, description="Seconds per SMTP operation")
    sms_api_base: str = Field(default="https://dysmsapi.aliyuncs.com", description="Aliyun SMS API base URL")
    sms_access_key_id: str | None = Field(default=None, description="Aliyun AccessKey id")
    sms_access_key_secret: str | None = Field(default=None, description="Aliyun AccessKey secret")
    sms_sign_name: str | None = Field(default=None, description="Default SMS signature (签名) if a template has none")
    wechat_api_base: str = Field(default="https://api.weixin.qq.com", description="WeChat API base URL")
    wechat_oa_appid: str | None = Field(default=None, description="Official account AppID (公众号)")
    wechat_oa_secret: str | None = Field(default=None, description="Official account AppSecret")
    wechat_mp_appid: str | None = Field(default=None, description="Mini-program AppID (小程序)")
    wechat_mp_secret: str | None = Field(default=None, description="Mini-program AppSecret")
    public_url: str = Field(default="http://127.0.0.1:8000", description="Base URL of `siyu serve` in links")
    messaging_lease_seconds: float = Field(default=60.0, gt=0, description="A claimed message's lease")
    messaging_batch: int = Field(default=20, ge=1, description="Messages claimed per dispatcher transaction")
    messaging_max_attempts: int = Field(default=8, ge=1, description="Transient failures before `failed`")
    messaging_retry_base: float = Field(default=30.0, ge=0, description="First retry delay (s), doubling")
    messaging_rate: dict[str, float] = Field(
        default_factory=lambda: {"sms": 50.0, "email": 20.0, "oa": 50.0, "miniprogram": 50.0, "webhook": 20.0},
        description="Messages per second per channel account, e.g. SIYU_MESSAGING_RATE='{\"sms\": 10}'",
    )
