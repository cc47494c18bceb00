"""A service's configuration that is complete but reaches nothing (port 9 is discard), for
tests that a service stops at start before it connects anywhere."""

NOTHING_LISTENS = {
    "AMQP_URI": "amqp://guest:guest@127.0.0.1:9/",
    "MONGO_URI": "mongodb://127.0.0.1:9/",
    "WEB_SERVER_ADDRESS": "127.0.0.1:0",
    # the kit's token check needs both at start; it fetches the key set only when asked
    "AUTH_ISSUER": "http://127.0.0.1:9/api/identity",
    "AUTH_JWKS_URL": "http://127.0.0.1:9/api/identity/.well-known/jwks.json",
}
