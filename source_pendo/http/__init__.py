"""What goes over the wire to Pendo: the transport's rules, quick calls, and every answer's handling.

    transport.py       no redirect to another origin with the key; the causes of a connection error
    quick.py           one plain GET or aggregation, no retries (check, discover's schema lookups, estimates)
    messages.py        the messages for Pendo's 400 and 403 answers and body quotes, secrets masked
    delegating.py      the base of the error handlers that wrap the manifest's
    success_first.py   manifest error handler: a 2xx is a success without its body parsed (unless not an answer)
    pendo_errors.py    manifest error handler: 400/403 decided by body and request, a host that never answered
    skip_not_found.py  manifest error handler: answers that mean "nothing here", skipped with one WARNING
    retry_after.py     manifest backoff: Retry-After obeyed up to 600 s
    retry_log.py       the CDK's retry lines name the status

Uses the settings (api_base, masking) and the facts.
"""
