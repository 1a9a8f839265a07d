"""Notices to the people on duty: routed by kind, pool and severity, sent through Apprise
from an outbox written in the same transaction as the change that causes them."""
