"""Helpers shared by scripts/bench and scripts/bench-revocation.

Loopback ports, a redis-server and nginx instances in a temporary
directory, the token tool (scripts/token) loaded as a module.  Standard
library only.
"""

import importlib.machinery
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NGINX = os.environ.get("TEST_NGINX_BINARY", "/usr/sbin/nginx")
MODULE = os.environ.get("TEST_NGINX_MODULE",
                        os.path.join(ROOT, "build",
                                     "ngx_http_token_scope_module.so"))
TOKEN = os.path.join(ROOT, "scripts", "token")

TEMP_PATHS = """\
    client_body_temp_path {dir}/client_body_temp;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port(taken=()):
    """A loopback port the kernel reports free, not one of TAKEN."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


def percentile(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def read_file(path):
    """A text file's contents, "" if it cannot be read."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def require(tools, module=True):
    """Exit with a message when a tool or the built module is missing."""
    for tool in tools:
        if not shutil.which(tool):
            raise SystemExit("%s not found (scripts/setup installs it)"
                             % tool)
    if module and not os.path.exists(MODULE):
        raise SystemExit("module not built: %s (run make)" % MODULE)


def exit_on_signals():
    """SIGINT and SIGTERM exit through atexit handlers (the cleanup)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(1))


def load_token_tool():
    """scripts/token as a module (it has no .py suffix)."""
    loader = importlib.machinery.SourceFileLoader("token_tool", TOKEN)
    spec = importlib.util.spec_from_loader("token_tool", loader)
    module = importlib.util.module_from_spec(spec)
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


def keygen(keys_dir, kid):
    """An ES256 key pair in KEYS_DIR/KID.key and KEYS_DIR/KID.pem."""
    subprocess.run([TOKEN, "keygen", "--alg", "ES256", "--kid", kid,
                    "--out", keys_dir], check=True, stdout=subprocess.DEVNULL)


def resp_command(*args):
    """One command in the Redis protocol."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Redis:
    """A redis-server on a loopback port, its files in DIR."""

    def __init__(self, dir, port):
        self.dir = dir
        self.port = port
        self.proc = None
        self.stopped = False

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self.stopped = False
        for _ in range(200):
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.02)
        raise SystemExit("redis-server does not answer")

    def cli(self, *args, stdin=None):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p",
                            str(self.port)] + list(args),
                           input=stdin, capture_output=True, text=True,
                           timeout=120)
        return (r.stdout + r.stderr).strip()

    def pipe(self, data, timeout=600):
        """Send raw protocol (bytes) with redis-cli --pipe; exit on errors."""
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p",
                            str(self.port), "--pipe"],
                           input=data, capture_output=True, timeout=timeout)
        if r.returncode != 0 or b"errors: 0" not in r.stdout:
            raise SystemExit("redis-cli --pipe: " + r.stdout.decode()
                             + r.stderr.decode())

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            if self.stopped:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class Nginx:
    """An nginx (daemon off) with DIR as its prefix: DIR/nginx.conf,
    DIR/error.log, DIR/stderr.log; answers on 127.0.0.1:PORT."""

    def __init__(self, dir, port):
        self.dir = dir
        self.port = port
        self.proc = None
        os.makedirs(dir, exist_ok=True)
        os.chmod(dir, 0o755)            # workers may run as nobody

    @property
    def pid(self):
        return self.proc.pid

    def write_conf(self, text):
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(text)

    def cmd(self, *extra):
        return [NGINX, "-p", self.dir + "/", "-c",
                os.path.join(self.dir, "nginx.conf"),
                "-e", os.path.join(self.dir, "error.log")] + list(extra)

    def read(self, name):
        return read_file(os.path.join(self.dir, name))

    def start(self, limit=10):
        self.proc = subprocess.Popen(
            self.cmd(), stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.dir, "stderr.log"), "ab"),
            stderr=subprocess.STDOUT)
        deadline = time.time() + limit
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("nginx exited:\n" + self.read("error.log")
                                 + self.read("stderr.log"))
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("nginx does not listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def worker_pids(self):
        """The processes whose parent is the master."""
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = proc_stat(int(name))
                if stat and int(stat[1]) == self.proc.pid:
                    pids.append(int(name))
        return sorted(pids)


def proc_stat(pid):
    """/proc/PID/stat after the command name: [state, ppid, ...], or None.
    utime and stime are items 11 and 12."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_ticks(pids):
    """utime + stime of PIDS, in clock ticks."""
    total = 0
    for pid in pids:
        stat = proc_stat(pid)
        if stat:
            total += int(stat[11]) + int(stat[12])
    return total
