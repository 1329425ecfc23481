"""A throwaway PostgreSQL server for the tests: initdb in a temp dir, postgres on a free port of 127.0.0.1.

The server comes from the Debian package `postgresql` (the README's test command installs it when missing:
scripts/install_system_packages.sh). initdb refuses to run as root, and CI runs as root: the server then
runs as the `postgres` user the package creates. A missing server fails the tests with that message; it is
never a skip, or CI would pass without testing the store.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

from tests.proxy_harness import free_port

_USER = "guardproxy"  # the superuser initdb creates; trust authentication, loopback only


def _bin_dir() -> Path:
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError(
            "no PostgreSQL server found (pg_ctl): run `bash scripts/install_system_packages.sh` (installs the "
            "Debian package postgresql), as the README's test command does"
        )
    return Path(found[-1]).parent


class PgServer:
    def __init__(self, *, durable: bool = False) -> None:
        self._durable = durable  # False: fsync off, for test speed; True: PostgreSQL's defaults (benchmarks)
        self._bin = _bin_dir()
        self._as_postgres = os.geteuid() == 0
        self.directory = Path(tempfile.mkdtemp(prefix="guardproxy-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        if self._as_postgres:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root, the test PostgreSQL needs a `postgres` user to run as (initdb refuses root);"
                    " the Debian package postgresql creates it: bash scripts/install_system_packages.sh"
                ) from None
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", _USER, "-E", "UTF8", "--no-sync")

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        if not self._durable:
            # Throwaway data: no fsync (the store's behaviour does not depend on it, the tests' speed does).
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self) -> str:
        """A fresh empty database on this server; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]  # generated name, not input
        return self.url(name)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self._bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        # cwd: a directory the postgres user may enter (initdb warns about an unreadable working directory).
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.directory)
        if done.returncode != 0:
            log = self.directory / "log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}\n{tail}")
