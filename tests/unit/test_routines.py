"""Events are created DISABLED on the target (step 12) whatever SHOW CREATE EVENT printed."""

from __future__ import annotations

import pytest

from migrator.mysql.routines import disabled_event_sql


@pytest.mark.parametrize(
    ("shown", "created"),
    [
        (  # MariaDB 10.11's SHOW CREATE EVENT; the body and the comment mention ENABLE and DO themselves
            "CREATE DEFINER=`a`@`%` EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2024-01-01 03:00:00' "
            "ON COMPLETION PRESERVE ENABLE COMMENT 'DO ENABLE' DO DELETE FROM t WHERE s = 'ENABLE'",
            "CREATE DEFINER=`a`@`%` EVENT `e` ON SCHEDULE EVERY 1 DAY STARTS '2024-01-01 03:00:00' "
            "ON COMPLETION PRESERVE DISABLE COMMENT 'DO ENABLE' DO DELETE FROM t WHERE s = 'ENABLE'",
        ),
        (  # an event replicated to the source from elsewhere
            "CREATE EVENT e ON SCHEDULE AT '2030-01-01' ON COMPLETION NOT PRESERVE DISABLE ON SLAVE DO SELECT 1",
            "CREATE EVENT e ON SCHEDULE AT '2030-01-01' ON COMPLETION NOT PRESERVE DISABLE DO SELECT 1",
        ),
        (  # MySQL 8.0.22+ spelling
            "CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DISABLE ON REPLICA DO SELECT 1",
            "CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DISABLE DO SELECT 1",
        ),
        ("CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DO BEGIN SELECT 1; END",
         "CREATE EVENT e ON SCHEDULE EVERY 1 HOUR DISABLE DO BEGIN SELECT 1; END"),
    ],
)
def test_events_are_created_disabled(shown: str, created: str) -> None:
    assert disabled_event_sql(shown) == created
