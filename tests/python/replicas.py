"""Three `sluice serve` replicas on one PostgreSQL behind nginx, on 127.0.0.1.

The deployment of deploy/ without a container engine: Debian's nginx with
deploy/nginx/sluice-proxy.conf (the file compose mounts) in front, the
replicas started at once on a fresh database (so their migrations race), and a
fake upstream model that answers after 200 ms. Every client request goes
through nginx. Standard library only.

    replicas.py BIN DATABASE_URL            the acceptance test (issue 26)
    replicas.py BIN DATABASE_URL --bench    runs/s and p99 with 1, 2, 3 replicas

Bounded: every wait has a deadline, the load phases have fixed durations, and
an alarm ends the whole run; whatever was started is stopped on the way out.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_upstream import FakeUpstream  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROXY_CONF = os.path.join(ROOT, "deploy", "nginx", "sluice-proxy.conf")
API_KEY = "nv-replicas-test"
MODELS = ["m-a", "m-b"]
DEADLINE_S = 420  # the whole run, set-up to clean-up


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def wait_until(what, predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def get_status(port, path):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


class Replica:
    """One `sluice serve` on a fixed port, restartable on the same port."""

    def __init__(self, binary, config, port, workdir, index):
        self.binary, self.config, self.port = binary, config, port
        self.log_path = os.path.join(workdir, f"replica-{index}.log")
        self.proc = None

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env["SLUICE_LOG"] = "warn"
        log = open(self.log_path, "a", encoding="utf-8")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", self.config, "--addr", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=log, env=env,
        )
        log.close()

    def wait_ready(self, timeout=30):
        def ready():
            check(self.proc.poll() is None, f"replica on {self.port} exited: see {self.log_path}")
            return get_status(self.port, "/readyz") == 200
        wait_until(f"replica {self.port} ready", ready, timeout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self):
        with open(self.log_path, encoding="utf-8") as f:
            return f.read()


class Nginx:
    """Debian's nginx with the reference proxy settings, in the foreground."""

    def __init__(self, workdir, port, replica_ports):
        self.port = port
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in replica_ports
        )
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = f"""{user}daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    upstream sluice {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        # For the test only: which replica answered.
        add_header X-Sluice-Upstream $upstream_addr always;
        include {PROXY_CONF};
    }}
}}
"""
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w", encoding="utf-8") as f:
            f.write(conf)
        nginx = os.environ.get("NGINX", "nginx")
        out = subprocess.run([nginx, "-t", "-c", self.conf, "-p", self.dir], capture_output=True, text=True)
        check(out.returncode == 0, f"nginx -t: {out.stderr}")
        self.proc = subprocess.Popen([nginx, "-c", self.conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until("nginx", lambda: get_status(port, "/healthz") == 200, 15)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Client:
    """Requests through nginx; each returns (status, headers, body text)."""

    def __init__(self, port):
        self.port = port

    def request(self, method, path, body=None, key=None, stream=False, timeout=30):
        headers = {}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        if stream:
            headers["Accept"] = "text/event-stream"
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            conn.request(method, path, None if body is None else json.dumps(body).encode(), headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            conn.close()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, text
        except (OSError, http.client.HTTPException) as e:
            return None, {}, f"{type(e).__name__}: {e}"


def sse_result(text):
    """The `result` event's data of a streamed run, or None (cut short, error)."""
    event = None
    for line in text.split("\n"):
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event == "result":
            return json.loads(line[5:].strip())
    return None


class Cluster:
    """The fake model, PostgreSQL's database, n replicas and nginx."""

    def __init__(self, binary, database_url, n, workdir, drain_ms=500):
        self.binary, self.database_url, self.workdir = binary, database_url, workdir
        self.fake = FakeUpstream(delay=0.2)
        self.config = os.path.join(workdir, "sluice.toml")
        models = "".join(f'''
[models.{m}]
provider = "openai"
base_url = "{self.fake.base}/v1"
profile = "o200k"
max_concurrency = 256
''' for m in MODELS)
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(f'''api_keys = ["{API_KEY}"]
database = "{database_url}"
drain_ms = {drain_ms}
shutdown_timeout_ms = 8000
concurrency_limit = 1024
{models}''')
        self.replicas = [Replica(binary, self.config, free_port(), workdir, i) for i in range(n)]
        self.nginx = None

    def start(self):
        # All at once: the migrations race on the empty database.
        for r in self.replicas:
            r.start()
        for r in self.replicas:
            r.wait_ready()
        self.nginx = Nginx(self.workdir, free_port(), [r.port for r in self.replicas])
        self.client = Client(self.nginx.port)

    def admin(self, *args):
        out = subprocess.run([self.binary, "admin", "--database", self.database_url, *args],
                             capture_output=True, text=True, timeout=60)
        check(out.returncode == 0, f"sluice admin {args}: {out.stderr}")
        return out.stdout.strip()

    def stop(self):
        if self.nginx:
            self.nginx.stop()
        for r in self.replicas:
            r.stop()
        self.fake.stop()


class Load:
    """Worker threads sending practice traffic through nginx until stopped;
    every request's outcome is recorded, and which are in flight is known."""

    def __init__(self, client, students, class_id, workers, stream_every=4):
        self.client, self.students, self.class_id = client, students, class_id
        self.workers, self.stream_every = workers, stream_every
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.in_flight = 0
        self.outcomes = []  # (kind, method, status, ok, detail)
        self.acknowledged = {}  # session id -> acknowledged turns
        self.threads = []

    def _record(self, kind, method, status, ok, detail=""):
        with self.lock:
            self.outcomes.append((kind, method, status, ok, detail))

    def _call(self, kind, method, path, body, key, stream=False):
        with self.lock:
            self.in_flight += 1
        try:
            return self.client.request(method, path, body, key, stream)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _worker(self, n):
        key = self.students[n % len(self.students)]
        session = None
        i = 0
        while not self.stop_flag.is_set():
            i += 1
            stream = i % self.stream_every == 0
            if session is None or i % 3 == 0:
                kind, path = "run", f"/user/practice/sessions/run?class_id={self.class_id}"
            else:
                kind, path = "continue", f"/user/practice/sessions/{session}/chat"
            body = {"prompt_text": f"worker {n} request {i}", "model_names": MODELS}
            status, _, text = self._call(kind, "POST", path, body, key, stream)
            result = None
            if status == 201:
                result = sse_result(text) if stream else json.loads(text)
            ok = result is not None and len(result.get("results", [])) == len(MODELS)
            self._record(kind + (" (streamed)" if stream else ""), "POST", status, ok, text[:200])
            if ok:
                session = result["session_id"]
                with self.lock:
                    self.acknowledged[session] = self.acknowledged.get(session, 0) + 1
            # A read between writes: GETs are retried by nginx on any error.
            status, _, text = self._call("list", "GET", "/user/practice/sessions?size=5", None, key)
            self._record("list", "GET", status, status == 200, text[:200])

    def start(self):
        for n in range(self.workers):
            t = threading.Thread(target=self._worker, args=(n,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=60)
            check(not t.is_alive(), "a load worker did not finish")

    def failures(self):
        return [o for o in self.outcomes if not o[3]]


def check_sessions(client, students, acknowledged):
    """Every acknowledged turn is stored, and every stored turn is whole: one
    result per model (the turn and its results are one transaction)."""
    seen = 0
    for key in students:
        page = 1
        while True:
            status, _, text = client.request("GET", f"/user/practice/sessions?page={page}&size=200", key=key)
            check(status == 200, f"list sessions: {status} {text[:200]}")
            listing = json.loads(text)
            for item in listing["items"]:
                sid = item["session_id"]
                status, _, text = client.request("GET", f"/user/practice/sessions/{sid}", key=key)
                check(status == 200, f"session {sid}: {status} {text[:200]}")
                detail = json.loads(text)
                turns = detail["history"]
                check(len(turns) >= acknowledged.get(sid, 0),
                      f"session {sid}: {len(turns)} turns stored, {acknowledged.get(sid)} acknowledged")
                for turn in turns:
                    results = turn["results"]
                    check(len(results) == len(MODELS), f"session {sid}: a half turn: {json.dumps(turn)[:300]}")
                seen += 1
            if page * 200 >= listing["total"]:
                break
            page += 1
    missing = [s for s in acknowledged if s <= 0]
    check(not missing, f"bad session ids {missing}")
    return seen


def upstream_port(headers):
    # $upstream_addr lists every replica tried: "127.0.0.1:1, 127.0.0.1:2".
    return int(headers.get("x-sluice-upstream", ":0").split(",")[-1].strip().rsplit(":", 1)[1])


def set_up_users(cluster):
    cluster.admin("user", "create", "teacher")
    students = [cluster.admin("user", "create", f"student{i}") for i in range(4)]
    class_id = cluster.admin("class", "create", "replicas", "--instructor", "teacher",
                             "--models", ",".join(MODELS), "--primary", MODELS[0])
    for i in range(4):
        cluster.admin("class", "add-member", class_id, f"student{i}")
    return students, int(class_id)


def acceptance(binary, database_url, workdir):
    cluster = Cluster(binary, database_url, 3, workdir)
    try:
        acceptance_checks(cluster)
    except BaseException:
        # What the processes said, before the temporary directory goes.
        for r in cluster.replicas:
            print(f"--- replica :{r.port} log (tail)\n{r.log()[-3000:]}", file=sys.stderr)
        if cluster.nginx:
            with open(os.path.join(cluster.nginx.dir, "error.log"), encoding="utf-8") as f:
                print(f"--- nginx error.log (tail)\n{f.read()[-3000:]}", file=sys.stderr)
        raise
    finally:
        cluster.stop()


def acceptance_checks(cluster):
    """The acceptance points of issue 26, in order, through nginx only."""
    t0 = time.time()
    cluster.start()
    for r in cluster.replicas:
        log = r.log()
        check("ERROR" not in log and "panicked" not in log, f"replica {r.port} logged an error:\n{log}")
    print(f"three replicas migrated at once and are ready, nginx in front ({time.time() - t0:.1f} s)")
    ports = {r.port for r in cluster.replicas}
    c = cluster.client
    students, class_id = set_up_users(cluster)

    # A token issued by one replica works on the others.
    status, headers, text = c.request("GET", "/v1/auth/token", key=API_KEY)
    check(status == 200, f"token: {status} {text}")
    token = json.loads(text)["result"]["accessToken"]
    issued_by = upstream_port(headers)
    served = set()
    for _ in range(6):
        status, headers, text = c.request(
            "POST", "/v1/api-tools/chat-tokenize/HCX-003",
            {"messages": [{"role": "user", "content": "hello"}]}, key=token)
        check(status == 200, f"token on another replica: {status} {text}")
        served.add(upstream_port(headers))
    check(served == ports, f"token requests reached {served}, not every replica {ports}")
    status, _, _ = c.request("POST", "/v1/api-tools/chat-tokenize/HCX-003",
                             {"messages": []}, key="sluice-at-" + "0" * 64)
    check(status == 401, "an unknown token is refused")
    print(f"a token issued on :{issued_by} works on every replica")

    # Runs, continuations and streamed runs spread over every replica.
    acknowledged = {}
    spread = {"run": set(), "continue": set(), "streamed run": set()}
    sessions = []
    for i in range(6):
        status, headers, text = c.request("POST", f"/user/practice/sessions/run?class_id={class_id}",
                                          {"prompt_text": f"hello {i}", "model_names": MODELS}, key=students[0])
        check(status == 201, f"run: {status} {text[:300]}")
        spread["run"].add(upstream_port(headers))
        sid = json.loads(text)["session_id"]
        sessions.append(sid)
        acknowledged[sid] = 1
    for sid in sessions:
        status, headers, text = c.request("POST", f"/user/practice/sessions/{sid}/chat",
                                          {"prompt_text": "and then?", "model_names": MODELS}, key=students[0])
        check(status == 201, f"continue: {status} {text[:300]}")
        spread["continue"].add(upstream_port(headers))
        acknowledged[sid] += 1
    for i in range(6):
        status, headers, text = c.request("POST", f"/user/practice/sessions/run?class_id={class_id}",
                                          {"prompt_text": f"stream {i}", "model_names": MODELS},
                                          key=students[0], stream=True)
        result = sse_result(text)
        check(status == 201 and result is not None, f"streamed run: {status} {text[:300]}")
        spread["streamed run"].add(upstream_port(headers))
        acknowledged[result["session_id"]] = 1
    for kind, seen in spread.items():
        check(seen == ports, f"{kind}s reached {seen}, not every replica {ports}")
    check_sessions(c, students[:1], acknowledged)
    print("runs, continuations and streamed runs were spread over all three replicas, all stored")

    # SIGKILL one replica mid-load.
    load = Load(c, students, class_id, workers=8)
    load.start()
    time.sleep(2)
    with load.lock:
        in_flight = load.in_flight
    victim = cluster.replicas[1]
    victim.signal(signal.SIGKILL)
    victim.wait_exit(10)
    time.sleep(2)
    victim.start()
    victim.wait_ready()
    time.sleep(2)
    load.stop()
    failures = load.failures()
    check(len(load.outcomes) > 50, f"too little load: {len(load.outcomes)} requests")
    check(len(failures) <= in_flight,
          f"{len(failures)} failures, more than the {in_flight} requests in flight at the kill: {failures}")
    check(all(f[1] == "POST" for f in failures), f"a GET failed (nginx retries those): {failures}")
    total = check_sessions(c, students, {**acknowledged, **load.acknowledged})
    print(f"SIGKILL mid-load: {len(load.outcomes)} requests, {len(failures)} failed "
          f"(<= {in_flight} in flight), {len(load.acknowledged)} sessions acknowledged, "
          f"{total} sessions checked: none lost, no half turn")
    acknowledged.update(load.acknowledged)

    # Rolling restart: SIGTERM each replica in turn under load.
    load = Load(c, students, class_id, workers=8)
    load.start()
    time.sleep(1)
    for r in cluster.replicas:
        r.signal(signal.SIGTERM)
        time.sleep(0.2)
        check(get_status(r.port, "/readyz") == 503, f"replica {r.port} is not draining")
        check(r.wait_exit(15) == 0, f"replica {r.port} exited badly:\n{r.log()[-2000:]}")
        r.start()
        r.wait_ready()
        # nginx skips a replica for fail_timeout (2 s) after it refused a
        # connection; the next one goes down only once this one is back
        # in rotation, or nginx would have none left.
        time.sleep(2.5)
    load.stop()
    failures = load.failures()
    check(len(load.outcomes) > 50, f"too little load: {len(load.outcomes)} requests")
    check(not failures, f"{len(failures)} of {len(load.outcomes)} requests failed in the rolling restart: "
                        f"{failures[:5]}")
    acknowledged.update(load.acknowledged)
    total = check_sessions(c, students, acknowledged)
    # The token from before the restarts still works: nothing was in memory.
    status, _, text = c.request("POST", "/v1/api-tools/chat-tokenize/HCX-003",
                                {"messages": [{"role": "user", "content": "hello"}]}, key=token)
    check(status == 200, f"the token after every replica restarted: {status} {text}")
    print(f"rolling restart: {len(load.outcomes)} requests, 0 failed; {total} sessions whole; "
          "the token issued before it still works")
    for r in cluster.replicas:
        check("panic" not in r.log(), f"replica {r.port} panicked:\n{r.log()[-2000:]}")


def bench(binary, database_url, workdir, make_database):
    """Practice runs/s and p99 through nginx with 1, 2 and 3 replicas."""
    duration, workers = float(os.environ.get("BENCH_SECONDS", "15")), int(os.environ.get("BENCH_CLIENTS", "64"))
    rows = []
    for n in (1, 2, 3):
        url = make_database(f"sluice_bench_{n}")
        sub = os.path.join(workdir, f"bench-{n}")
        os.makedirs(sub)
        cluster = Cluster(binary, url, n, sub)
        try:
            cluster.start()
            students, class_id = set_up_users(cluster)
            pids = {"sluice": [r.proc.pid for r in cluster.replicas], "nginx": nginx_pids(cluster.nginx.proc.pid),
                    "postgres": postgres_pids(), "client+fake (python)": [os.getpid()]}
            latencies, errors = [], [0]
            lock = threading.Lock()
            stop = threading.Event()

            def worker(i):
                key = students[i % len(students)]
                while not stop.is_set():
                    start = time.perf_counter()
                    status, _, _ = cluster.client.request(
                        "POST", f"/user/practice/sessions/run?class_id={class_id}",
                        {"prompt_text": f"bench {i}", "model_names": MODELS[:1]}, key=key)
                    took = time.perf_counter() - start
                    with lock:
                        if status == 201:
                            latencies.append(took)
                        else:
                            errors[0] += 1
            threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
            cpu_before = {k: cpu_seconds(v) for k, v in pids.items()}
            started = time.perf_counter()
            for t in threads:
                t.start()
            time.sleep(duration)
            stop.set()
            for t in threads:
                t.join(timeout=60)
            elapsed = time.perf_counter() - started
            cpu = {k: (cpu_seconds(v) - cpu_before[k]) / elapsed for k, v in pids.items()}
            latencies.sort()
            p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
            rows.append((n, len(latencies) / elapsed, p(0.5), p(0.99), errors[0], cpu))
            print(f"{n} replica(s): {len(latencies) / elapsed:.1f} runs/s, p50 {p(0.5):.0f} ms, "
                  f"p99 {p(0.99):.0f} ms, {errors[0]} errors; CPU cores busy: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()), flush=True)
        finally:
            cluster.stop()
    print(f"\n{workers} clients, {duration:.0f} s per row, one model per run, upstream replies after 200 ms; "
          f"{os.cpu_count()} CPU cores\n")
    print("| replicas | runs/s | p50 ms | p99 ms | errors | CPU cores busy: sluice / nginx / postgres / client+fake |")
    print("|---|---|---|---|---|---|")
    for n, rate, p50, p99, errs, cpu in rows:
        print(f"| {n} | {rate:.1f} | {p50:.0f} | {p99:.0f} | {errs} | "
              + " / ".join(f"{v:.2f}" for v in cpu.values()) + " |")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def nginx_pids(master):
    return [master] + children(master)


def postgres_pids():
    """This test's PostgreSQL server (its data directory names the postmaster)
    and its backends; other servers on the machine are not counted."""
    try:
        with open(os.path.join(os.environ["PG_DATA_DIR"], "postmaster.pid")) as f:
            master = int(f.readline())
    except (KeyError, OSError, ValueError):
        return []
    return [master] + children(master)


def cpu_seconds(pids):
    """User + system CPU seconds of these processes (children included as they
    are listed; postgres backends come and go, so it is sampled by pgrep)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def main():
    binary, database_url = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("replicas.py ran too long")))
    signal.alarm(DEADLINE_S)
    # A SIGTERM (CI's timeout, Ctrl-C's cousin) unwinds like an error, so the
    # `finally` blocks stop every process this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("replicas.py: terminated"))
    with tempfile.TemporaryDirectory(prefix="sluice-replicas-") as workdir:
        if "--bench" in sys.argv:
            base = database_url.rsplit("/", 1)[0]

            def make_database(name):
                psql = os.environ.get("PSQL", "psql")
                subprocess.run([psql, database_url, "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
                subprocess.run([psql, database_url, "-qc", f"CREATE DATABASE {name}"], check=True)
                return f"{base}/{name}"
            bench(binary, database_url, workdir, make_database)
        else:
            acceptance(binary, database_url, workdir)
            print("replicas: all checks passed")


if __name__ == "__main__":
    main()
