"""A real nginx ``limit_req`` in front of a fast upstream, with TLS and gzip, on 127.0.0.1.

Not a benchmark itself. ``with Nginx(upstream_url, rate=100, burst=10) as n: n.base_url``
writes a config into a temporary directory (with a self-signed certificate for 127.0.0.1
made by ``openssl`` on the spot; clients trust it through ``n.cert_file``, e.g. as
``SSL_CERT_FILE``), starts Debian's nginx in the foreground on a free port, and stops it.

``limit_req rate=R burst=B nodelay`` is nginx's leaky bucket: excess drains at R per second,
a request beyond B of excess gets 429 (``limit_req_status``), answered with
``Retry-After: 1`` (nginx sends none on its own).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Nginx", "nginx_binary"]

_CONF = """\
worker_processes 1;
daemon off;
error_log {tmp}/error.log warn;
pid {tmp}/nginx.pid;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    limit_req_zone $binary_remote_addr zone=api:1m rate={rate}r/s;
    limit_req_status 429;
    upstream app {{
        server 127.0.0.1:{upstream};
        keepalive 64;
    }}
    gzip on;
    gzip_types application/json;
    gzip_min_length 256;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        keepalive_requests 1000000;
        location / {{
            limit_req zone=api burst={burst} nodelay;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        error_page 429 = @throttled;
        location @throttled {{
            add_header Retry-After 1 always;
            default_type application/json;
            return 429 '{{"success":false,"error":"Too many requests"}}';
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """The nginx executable, or ``None`` (install Debian's: ``apt-get install -y nginx``)."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Nginx:
    """nginx with ``limit_req`` (rate, burst, nodelay), TLS and gzip, proxying to an upstream."""

    def __init__(self, upstream_url: str, *, rate: float, burst: int, startup_timeout: float = 20.0) -> None:
        if rate < 1 or rate != int(rate):
            raise ValueError(f"nginx limit_req takes whole requests per second, got {rate!r}")
        upstream = urlsplit(upstream_url)
        assert upstream.hostname == "127.0.0.1" and upstream.port is not None, upstream_url
        self.upstream_port = upstream.port
        self.path = upstream.path.rstrip("/")
        self.rate = int(rate)
        self.burst = burst
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        self.base_url = ""
        self.cert_file = ""

    @property
    def command(self) -> str:
        return f"nginx limit_req rate={self.rate}r/s burst={self.burst} nodelay, TLS, gzip"

    def __enter__(self) -> Nginx:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install -y nginx)")
        self.tmp = tempfile.TemporaryDirectory(prefix="asyncvox-nginx-")
        tmp = Path(self.tmp.name)
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem"),
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        self.cert_file = str(tmp / "cert.pem")
        port = _free_port()
        user = "user root;" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
        conf = _CONF.format(
            tmp=tmp, user=user, rate=self.rate, burst=self.burst, upstream=self.upstream_port, port=port
        )
        (tmp / "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen(
            [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.__exit__()
                raise RuntimeError(f"nginx exited at start-up: {err}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(
                        f"nginx did not listen on {port} within {self.startup_timeout} s"
                    ) from None
                time.sleep(0.05)
        self.base_url = f"https://127.0.0.1:{port}{self.path}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)  # graceful shutdown
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None
