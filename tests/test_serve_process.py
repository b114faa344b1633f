"""A real `lsr serve` process (uvicorn, two workers, loopback): /ask streams server-sent events; SIGTERM under
load lets the requests in flight finish and exits 0; no request is answered 5xx."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import needs_shared
from test_serve import index  # noqa: F401 - the module's ADI index fixture

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytestmark = needs_shared


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(folder, tmp_path, *args):
    port = _free_port()
    log = open(tmp_path / "serve.log", "w+")
    env = {**os.environ, "LSR_TEST_KEY": "k3y"}
    proc = subprocess.Popen([sys.executable, "-m", "lsr", "serve", str(folder), "--port", str(port), *args,
                             "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
    else:
        proc.kill()
        pytest.fail("server did not start: " + (tmp_path / "serve.log").read_text())
    return proc, url, log


@pytest.fixture
def server(index, tmp_path):  # noqa: F811
    proc, url, log = _start(index, tmp_path, "--workers", "2", "--api-key-env", "LSR_TEST_KEY")
    yield proc, url, {"Authorization": "Bearer k3y"}
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def test_docs_serve_examples_run_as_written(index, tmp_path):  # noqa: F811
    """Every bash and python block of docs/serve.md, against a live server (its port for 8000)."""
    import re

    from conftest import ROOT
    from test_serve import CliRunner, cli
    # the examples set seismic search parameters, and add and delete a document
    seismic = tmp_path / "seismic"
    res = CliRunner().invoke(cli, ["index", str(index.parent / "adi.jsonl"), "-m", "splade-tiny", "--index-type",
                                   "seismic", "-o", str(seismic), "-q"])
    assert res.exit_code == 0, res.output
    proc, url, log = _start(seismic, tmp_path)
    try:
        page = (ROOT / "docs" / "serve.md").read_text()
        port = url.rsplit(":", 1)[1]
        shells = re.findall(r"```bash\n(.*?)```", page, re.S)
        assert len(shells) >= 8
        for block in shells:
            res = subprocess.run(["bash", "-o", "pipefail", "-ec", block.replace("localhost:8000", f"127.0.0.1:{port}")],
                                 capture_output=True, text=True, timeout=120)
            assert res.returncode == 0 and res.stdout.strip(), (block, res.stdout, res.stderr)
            assert '"error"' not in res.stdout, (block, res.stdout)
        python = re.findall(r"```python\n(.*?)```", page, re.S)
        assert python
        os.environ["LSR_URL"] = url
        try:
            for code in python:
                exec(compile(code, "docs/serve.md", "exec"), {})
        finally:
            del os.environ["LSR_URL"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
        log.close()


def test_ask_streams_and_sigterm_finishes_in_flight_requests(server):
    proc, url, auth = server
    # /ask as server-sent events: token events, then the cited answer
    events = []
    with httpx.stream("POST", url + "/ask", headers=auth, timeout=120,
                      json={"question": "how are documents indexed?", "k": 3, "max_new_tokens": 12,
                            "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                events.append([line[7:], None])
            elif line.startswith("data: "):
                events[-1][1] = json.loads(line[6:])
    assert events[-1][0] == "answer" and [e for e, _ in events[:-1]] == ["token"] * (len(events) - 1)
    answer = events[-1][1]
    assert answer["answer"] and answer["sources"] and "".join(d for _, d in events[:-1]).strip()

    # load: 8 clients searching, one slow /ask in flight, then SIGTERM
    statuses, errors, stop = [], [], threading.Event()

    def client():
        with httpx.Client(base_url=url, headers=auth, timeout=30) as c:
            while not stop.is_set():
                try:
                    statuses.append(c.post("/search", json={"query": "computer indexing", "k": 5}).status_code)
                except httpx.TransportError as e:  # refused or closed once the server stops accepting
                    errors.append(type(e).__name__)
                    return

    asked = {}

    def ask():
        r = httpx.post(url + "/ask", headers=auth, timeout=60,
                       json={"question": "what is automatic abstracting?", "k": 3, "max_new_tokens": 16})
        asked["status"], asked["body"] = r.status_code, r.json()

    threads = [threading.Thread(target=client) for _ in range(8)] + [threading.Thread(target=ask)]
    for t in threads:
        t.start()
    time.sleep(2.0)  # the /ask is generating by now
    assert statuses and all(s == 200 for s in statuses)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert code == 0, f"exit code {code}"
    assert time.monotonic() - sent < 10
    assert asked.get("status") == 200 and asked["body"]["answer"], asked  # in flight at SIGTERM: answered
    assert all(s == 200 for s in statuses), sorted(set(statuses))  # never a 5xx


def test_port_taken_is_a_clear_error(index):  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "lsr", "serve", str(index), "--port", str(port), "--workers", "2"],
                             capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in res.stderr, res.stderr
