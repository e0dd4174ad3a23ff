"""Account statements, parsed and rewritten: MariaDB output from a 10.11 server, MySQL 8 output as its manual shows it."""

from __future__ import annotations

from migrator.mysql.accounts import (
    Account,
    create_user_sql,
    exceeding,
    host_matches,
    missing_for,
    parse_grants,
    privilege_name,
)
from migrator.mysql.flavour import detect

MARIADB = detect("10.11.6-MariaDB")
MYSQL80 = detect("8.0.36")
MYSQL84 = detect("8.4.3")


def test_mariadb_show_grants() -> None:
    grants = parse_grants([
        "GRANT `reader` TO `app`@`10.%`",
        "GRANT PROCESS ON *.* TO `app`@`10.%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122' "
        "WITH MAX_QUERIES_PER_HOUR 100 MAX_USER_CONNECTIONS 5",
        "GRANT EXECUTE ON `mysql`.* TO `app`@`10.%`",
        "GRANT SELECT, INSERT (`a`, `b`) ON `shop`.`t` TO `app`@`10.%` WITH GRANT OPTION",
        "GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `app`@`10.%`",
        "SET DEFAULT ROLE `reader` FOR `app`@`10.%`",
    ])
    assert grants.roles == (Account("reader", ""),) and grants.default_roles == (Account("reader", ""),)
    by_object = {f"{g.kind} {g.object}".strip(): g for g in grants.privileges}
    assert by_object["*.*"].privileges == ("PROCESS",) and by_object["*.*"].grant_option is False
    assert by_object["`shop`.`t`"].privileges == ("SELECT", "INSERT (`a`, `b`)")
    assert by_object["`shop`.`t`"].grant_option and by_object["`shop`.`t`"].schema == "shop"
    assert by_object["PROCEDURE `shop`.`p`"].schema == "shop" and by_object["`mysql`.*"].schema == "mysql"
    assert by_object["`shop`.`t`"].statement("`x`@`%`") == (
        "GRANT SELECT, INSERT (`a`, `b`) ON `shop`.`t` TO `x`@`%` WITH GRANT OPTION"
    )


def test_mysql8_show_grants_with_roles_and_dynamic_privileges() -> None:
    # MySQL 8.0 manual, "Using Roles": SHOW GRANTS FOR 'dev1'@'localhost'
    grants = parse_grants([
        "GRANT USAGE ON *.* TO `dev1`@`localhost`",
        "GRANT `app_developer`@`%` TO `dev1`@`localhost`",
        "GRANT BACKUP_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `dev1`@`localhost`",
        "GRANT PROXY ON ``@`` TO `dev1`@`localhost`",
    ])
    assert grants.roles == (Account("app_developer", "%"),)
    assert [g.privileges for g in grants.privileges] == [("BACKUP_ADMIN", "SYSTEM_VARIABLES_ADMIN")]
    assert len(grants.other) == 1 and "PROXY" in grants.other[0]
    assert privilege_name("Read_only admin") == privilege_name("READ_ONLY ADMIN") == "READ ONLY ADMIN"


def test_show_create_user_between_flavours() -> None:
    maria = ("CREATE USER `app`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122' "
             "WITH MAX_USER_CONNECTIONS 5 ACCOUNT LOCK PASSWORD EXPIRE INTERVAL 90 DAY")
    sql, left, defaults = create_user_sql(maria, MARIADB, MARIADB)
    assert sql == maria.replace("CREATE USER ", "CREATE USER IF NOT EXISTS ", 1) and left == [] and defaults == []
    sql, _, _ = create_user_sql(maria, MARIADB, MYSQL84)
    assert "IDENTIFIED WITH mysql_native_password AS '*D821809F681A40A6E379B50D0463EFAE20BDD122'" in sql
    # MySQL 8.0 manual, SHOW CREATE USER (a user with a default role and password options).
    mysql = ("CREATE USER `u1`@`localhost` IDENTIFIED WITH 'mysql_native_password' AS "
             "'*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19' DEFAULT ROLE `r1`@`%`,`r2`@`%` REQUIRE NONE "
             "PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK PASSWORD HISTORY DEFAULT PASSWORD REUSE INTERVAL DEFAULT "
             "PASSWORD REQUIRE CURRENT DEFAULT FAILED_LOGIN_ATTEMPTS 3 PASSWORD_LOCK_TIME 2")
    same, left, defaults = create_user_sql(mysql, MYSQL80, MYSQL84)
    assert "DEFAULT ROLE" not in same and "FAILED_LOGIN_ATTEMPTS 3" in same and left == []
    assert defaults == [Account("r1", "%"), Account("r2", "%")]
    to_maria, left, _ = create_user_sql(mysql, MYSQL80, MARIADB)
    assert to_maria == ("CREATE USER IF NOT EXISTS `u1`@`localhost` IDENTIFIED WITH mysql_native_password AS "
                        "'*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19' REQUIRE NONE PASSWORD EXPIRE DEFAULT "
                        "ACCOUNT UNLOCK")
    assert left == ["FAILED_LOGIN_ATTEMPTS 3", "PASSWORD_LOCK_TIME 2"]  # DEFAULTs lose nothing


def test_a_mapping_may_not_add_privileges() -> None:
    original = {("SELECT", "`shop`.*"), ("EXECUTE", "`shop`.*"), ("ALL PRIVILEGES", "`hr`.*")}
    assert exceeding({("SELECT", "`shop`.`t`"), ("UPDATE", "`hr`.`x`")}, original) == []
    assert exceeding({("SELECT", "*.*"), ("DELETE", "`shop`.`t`")}, original) == [
        "DELETE ON `shop`.`t`", "SELECT ON *.*",
    ]


def test_sessions_are_matched_to_accounts_like_the_server_does() -> None:
    assert host_matches("10.0.%", "10.0.3.4") and host_matches("%", "anything") and not host_matches("10.0.%", "10.1.0.1")
    assert host_matches("localhost", "127.0.0.1")
    target = {Account("app", "10.%"), Account("etl", "%")}
    seen = ["app@10.2.3.4", "app@192.168.1.1", "etl@host", "admin@10.0.0.1", "batch@h", "rdsadmin@localhost"]
    assert missing_for(seen, target, skip=["admin"], exclude=("batch@*",)) == ["app@192.168.1.1"]
