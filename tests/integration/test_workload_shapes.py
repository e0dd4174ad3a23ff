"""The sandbox writer's transaction shapes (autocommit on/off, XA, ANALYZE/FLUSH) land in the binlog and
keep the writer's oracle exact, also through a server kill (no XA transaction of ours left prepared)."""

from __future__ import annotations

from pathlib import Path

from migrator.dns.local import create
from migrator.ports import DnsRecord
from migrator.sandbox import create_sample_dataset
from migrator.sandbox.workload import WriteWorkload
from migrator.secrets import Secret
from migrator.tools.binlog_text import Transaction, XaOutcome, parse
from tests.conftest import ADMIN_USER, MakeServer, admin_endpoint
from tests.integration.binlog_text_tool import mariadb_text
from tests.integration.test_binlog_applier import rows
from tests.integration.test_sandbox import RECORD, address, wait_until


def test_the_shapes_writer_logs_every_shape_and_its_oracle_holds(make_server: MakeServer, tmp_path: Path) -> None:
    source = make_server("source", server_id=1, extra_args=("--sync-binlog=1",))
    dataset = create_sample_dataset(admin_endpoint(source))
    dns_path = tmp_path / "dns.json"
    create(dns_path, DnsRecord(RECORD, address(source), ttl=60))
    import tests.conftest

    workload = WriteWorkload(
        dns_path, RECORD, dataset.app_user, dataset.app_password, rate_per_s=400, seed=11, retry_pause_s=0.02,
        shapes=True, admin=(ADMIN_USER, Secret(tests.conftest.ADMIN_PASSWORD)),
    )
    workload.start()
    wait_until(lambda: workload.stats().ops_ok >= 150, "writes in every shape")
    source.kill()  # in-doubt XA transactions must not stay prepared
    failed = workload.stats().ops_failed_total
    wait_until(lambda: workload.stats().ops_failed_total > failed, "the writer to notice")
    source.start()
    before = workload.stats().ops_ok
    wait_until(lambda: workload.stats().ops_ok >= before + 150, "writes after the restart")
    stats = workload.stop()
    counts = workload.shape_counts
    assert min(counts["transaction"], counts["autocommit"], counts["xa"]) > 20, counts
    assert counts["analyze"] > 0 and counts["flush"] > 0, counts
    verdict = workload.verify(admin_endpoint(source))
    assert verdict.ok, verdict.describe()
    assert verdict.in_doubt_tolerated == stats.in_doubt
    assert rows(source, "XA RECOVER") == []

    units = [u for (name, _size) in rows(source, "SHOW BINARY LOGS")
             for u in parse(mariadb_text(source, str(name)).splitlines())]
    assert any(isinstance(u, Transaction) and u.xa_prepared for u in units)
    assert any(isinstance(u, XaOutcome) and u.commit for u in units)
    queries = [q.sql.upper() for u in units if isinstance(u, Transaction) for q in u.queries]
    assert any(q.startswith(b"ANALYZE TABLE") for q in queries)
    assert any(q.startswith(b"FLUSH PRIVILEGES") for q in queries)
