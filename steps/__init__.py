"""The 14 steps of the RDS to EC2 plan, one module each, in order."""

from steps import (
    s01_dns_ttl,
    s02_replica,
    s03_snapshot,
    s04_retention,
    s05_stream,
    s06_copy,
    s07_apply,
    s08_approx_sync,
    s09_pause_writes,
    s10_full_sync,
    s11_stop_services,
    s12_routines,
    s13_dns_switch,
    s14_resume_writes,
)

STEPS = (
    s01_dns_ttl,
    s02_replica,
    s03_snapshot,
    s04_retention,
    s05_stream,
    s06_copy,
    s07_apply,
    s08_approx_sync,
    s09_pause_writes,
    s10_full_sync,
    s11_stop_services,
    s12_routines,
    s13_dns_switch,
    s14_resume_writes,
)
