"""Stream push: Tranquility-style HTTP event push into a durable spool, indexed by realtime handoffs.

``spec`` (the realtime task spec), ``registry`` (which dataSources accept pushes), ``spool`` (the durable spool in
the metadata DB), ``receiver`` (decoding a push and spooling it), ``handoff`` (indexing and publishing a closed
window exactly once), ``runner`` (the foreground realtime process) and ``cli``. See docs/stream-push.md.
"""
