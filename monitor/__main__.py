"""`python -m monitor` is the `sla-monitor` command."""

from monitor.cli import main

main()
