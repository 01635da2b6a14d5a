"""WeCom (企业微信) SCRM: callbacks, welcome messages, channel QR codes, inheritance and the `wecom`
message channel. Configuration per brand lives in the store (secrets sealed with SIYU_PII_KEY);
the API host is `SIYU_WECOM_API_BASE`, so tests and the demo talk to `siyu.fakes.wecom`."""
