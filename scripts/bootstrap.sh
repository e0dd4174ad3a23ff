#!/usr/bin/env bash
# Set up migrator on a fresh Debian/Ubuntu machine and run it. The README's two set-up commands:
#
#   bash scripts/bootstrap.sh demo [ARGS...]   # the embedded default: a whole migration on local servers
#   bash scripts/bootstrap.sh test [ARGS...]   # ruff, mypy, then pytest (ARGS go to pytest)
#   bash scripts/bootstrap.sh bench [ARGS...]  # bench/ against its peers (ARGS go to python -m bench)
#
# Installs what is missing (MariaDB server and client binaries, python3-venv) with apt as root or
# through sudo, creates .venv, installs the package with its test extras when pyproject.toml
# changed, then runs. It never starts or stops the system MariaDB service: the demo and the tests
# run their own throwaway mariadbd processes on loopback ports.
set -euo pipefail

usage() {
  echo "usage: bash scripts/bootstrap.sh demo|test|bench [ARGS...]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
mode=$1
shift
case "$mode" in
  demo | test | bench) ;;
  *) usage ;;
esac

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "error: installing packages needs root; run as root or install sudo" >&2
    exit 1
  fi
}

have_any() {
  # have_any NAME...: true when one of the programs is on PATH or in /usr/sbin (often not on a user's PATH)
  local name
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1 || [ -x "/usr/sbin/$name" ]; then
      return 0
    fi
  done
  return 1
}

# The newest python3 >= 3.11 on the machine, or nothing.
find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

apt_updated=no
apt_install() {
  say "installing $* with apt"
  if [ "$apt_updated" = no ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    apt_updated=yes
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

if ! have_any mariadbd mysqld; then
  apt_install mariadb-server mariadb-client
elif ! have_any mariadb-dump mysqldump || ! have_any mariadb-binlog mysqlbinlog || ! have_any mariadb mysql; then
  apt_install mariadb-client
fi

# The benchmark's peers; without them it still runs and says which rows it skipped.
if [ "$mode" = bench ]; then
  peers=()
  have_any mydumper && have_any myloader || peers+=(mydumper)
  have_any pt-table-checksum || peers+=(percona-toolkit)
  if [ ${#peers[@]} -gt 0 ]; then
    apt_install "${peers[@]}" || say "could not install ${peers[*]}: the bench skips those peers"
  fi
fi

python=$(find_python || true)
if [ -z "$python" ]; then
  # Debian 12 and Ubuntu 24.04 ship 3.11+ as python3; Ubuntu 22.04 has it as python3.11.
  if [ "$apt_updated" = no ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    apt_updated=yes
  fi
  candidate=$(apt-cache policy python3.11 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
    apt_install python3.11 python3.11-venv
  else
    apt_install python3 python3-venv
  fi
  python=$(find_python || true)
elif ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  # Debian splits ensurepip out of the interpreter; without it `python3 -m venv` fails.
  apt_install "$(basename "$python")-venv"
fi
if [ -z "$python" ]; then
  echo "error: migrator needs Python 3.11 or newer and none could be installed" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $python"
  "$python" -m venv .venv
fi

# Reinstall only when pyproject.toml changed since the last install (or the install is broken).
stamp=.venv/.migrator-bootstrap-stamp
wanted=$(sha256sum pyproject.toml | awk '{print $1}')
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ] || [ ! -x .venv/bin/migrator ]; then
  say "installing migrator and its test tools into .venv"
  .venv/bin/python -m pip install -q -e '.[test]'
  printf '%s\n' "$wanted" >"$stamp"
fi

# The copy's fast select (migrator/tools/select_tsv.c, linked against MariaDB Connector/C), rebuilt
# when its source changed. Optional: without it the copy reads rows through `mariadb --batch`, which
# costs the machine about 15% more CPU per copied byte.
select_src=migrator/tools/select_tsv.c
select_bin=.venv/bin/migrator-select-tsv
select_stamp=.venv/.select-tsv-stamp
select_wanted=$(sha256sum "$select_src" | awk '{print $1}')
if [ "$(cat "$select_stamp" 2>/dev/null || true)" != "$select_wanted" ] || [ ! -x "$select_bin" ]; then
  if ! command -v mariadb_config >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
    (apt_install libmariadb-dev gcc libc6-dev) || true
  fi
  say "building $select_bin"
  # shellcheck disable=SC2046 # mariadb_config prints several flags
  if command -v mariadb_config >/dev/null 2>&1 &&
    cc -O2 -Wall -o "$select_bin.tmp" "$select_src" $(mariadb_config --cflags --libs); then
    mv "$select_bin.tmp" "$select_bin"
    printf '%s\n' "$select_wanted" >"$select_stamp"
  else
    rm -f "$select_bin.tmp"
    say "could not build $select_bin (needs cc and libmariadb-dev): the copy uses the mariadb client instead"
  fi
fi

case "$mode" in
  demo)
    exec .venv/bin/migrator demo "$@"
    ;;
  test)
    say "ruff check migrator steps tests"
    .venv/bin/ruff check migrator steps tests
    say "mypy"
    .venv/bin/mypy
    say "pytest"
    # Two workers (pytest-xdist): a test mostly waits on its own throwaway servers, so one process
    # kept the two cores 37% busy; two cut the suite from 9.5 to 6 minutes here. `-n 0` after the
    # command runs it in one process.
    exec .venv/bin/python -m pytest -q -n 2 "$@"
    ;;
  bench)
    exec .venv/bin/python -m bench "$@"
    ;;
esac
