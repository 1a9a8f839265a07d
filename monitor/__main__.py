"""`python -m monitor` is the `sla-monitor` command."""

from monitor.cli import app

app(prog_name="sla-monitor")
