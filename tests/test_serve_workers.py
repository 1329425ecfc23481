"""`guardproxy serve --workers N`: N processes on one port (SO_REUSEPORT), stopped together."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import openai

from tests.fake_upstream import FakeUpstream
from tests.policies import write_policy
from tests.replicas import CLEAN_EXITS, ROOT, ServeProcess


def listening_sockets(port: int) -> int:
    """Sockets in LISTEN state on `port` (IPv4), from /proc/net/tcp."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            count += 1
    return count


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_two_workers_share_the_port_and_stop_together(tmp_path: Path, upstream: FakeUpstream) -> None:
    policy = write_policy(tmp_path, upstream.base_url)
    with ServeProcess(policy, name="workers", extra_args=("--workers", "2")) as served:
        assert served.process is not None
        deadline = time.monotonic() + 60
        while listening_sockets(served.port) < 2:  # the second worker may still be loading
            assert time.monotonic() < deadline, served.log()
            time.sleep(0.1)
        workers = children_of(served.process.pid)
        assert len(workers) == 2
        for i in range(12):  # a new connection each: the kernel spreads them over the workers
            with openai.OpenAI(base_url=served.url + "/v1", api_key="k", max_retries=0) as client:
                answer = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"hello {i}"}],
                )
                assert answer.choices[0].message.content == f"hello {i}"
        assert served.stop() in CLEAN_EXITS
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # no worker left behind
    with sqlite3.connect(tmp_path / "audit.db") as db:  # both workers flushed their records on SIGTERM
        assert db.execute("SELECT count(*) FROM audit_records").fetchone() == (12,)


def test_a_dead_worker_stops_the_others_and_the_exit_code_says_so(tmp_path: Path, upstream: FakeUpstream) -> None:
    policy = write_policy(tmp_path, upstream.base_url)
    with ServeProcess(policy, name="workers", extra_args=("--workers", "2")) as served:
        assert served.process is not None
        deadline = time.monotonic() + 60
        while len(children_of(served.process.pid)) < 2 or listening_sockets(served.port) < 2:
            assert time.monotonic() < deadline, served.log()
            time.sleep(0.1)
        first, second = children_of(served.process.pid)
        os.kill(first, signal.SIGKILL)
        assert served.process.wait(timeout=30) == 1
        assert not Path(f"/proc/{second}").exists()  # stopped and reaped by the supervisor


def test_workers_must_be_positive(tmp_path: Path, upstream: FakeUpstream) -> None:
    policy = write_policy(tmp_path, upstream.base_url)
    done = subprocess.run(
        [sys.executable, "-m", "guardproxy", "serve", "--policy", str(policy), "--workers", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 2 and "--workers must be 1 or more" in done.stderr
