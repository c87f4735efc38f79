"""Notifiers: outbound delivery of events to the webhooks and e-mail addresses a client configures.

`signing` signs webhook bodies (Standard Webhooks), `webhook` and `email` send one
delivery, `worker` claims due deliveries and retries them, `health` says whether a
notifier's recent deliveries went through, `producers` records the admin's own events,
`channels` checks where a notifier sends, `platform` manages platform notifiers (no client:
system and user events, such as the pool's).
"""
