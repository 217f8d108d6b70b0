"""One HTTP client per test process, for every plain HTTP call the tests make.

`httpx.get()` and its siblings build a client per call, and with it a TLS context that loads the CA bundle:
~21 ms of CPU each, measured, against ~0.13 ms on a shared client. The tests poll (`/health` every 50 ms while
a server starts, instance lists until something ends), so those per-call clients were a large share of the
suite's CPU on a 2-core machine. Same defaults as `httpx.get()` (5 s timeout, no redirects followed). Pooled
connections are checked before reuse (a server that went away costs a new connection, not an error) and dropped
after `KEEPALIVE_EXPIRY_S` idle, before the 5 s after which uvicorn-based servers close theirs, so no request is
sent on a connection the server is closing. No cookie is kept, as with `httpx.get()`: a cookie one test's
request was given (a dashboard login) must not authenticate another's.
"""

from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from mcpsim.wire import KEEPALIVE_EXPIRY_S

HTTP = httpx.Client(
    limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S),
    cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
)
"""Thread-safe (httpx's pool locks); closed with the process."""
