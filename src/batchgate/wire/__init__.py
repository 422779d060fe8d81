"""Wire shapes that both the API side and the worker side need (pure, no
network I/O): OpenAI's request and reply codecs, and webhook URLs as the
HTTP client will send them."""
