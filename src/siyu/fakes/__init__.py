"""Local fakes of the providers siyu talks to, speaking their documented wire formats: run them for
tests and the demo (`python -m siyu.fakes.aliyun_sms --port 9101`), point `SIYU_*_API_BASE` at them."""
