"""Wire codecs: OpenAI's request and reply shapes <-> the canonical types,
shared by the OpenAI dialect and the OpenAI-compatible backends."""
