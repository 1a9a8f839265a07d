"""The web UI: server-rendered Chinese pages over the same services as the API."""
