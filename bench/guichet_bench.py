"""What the Python benchmarks share: a free port, a guichet server started and waited for,
and the CLI run with an environment."""
import http.client
import socket
import subprocess
import time


def free_port():
    """A port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(binary, env):
    """Runs `guichet ARGS…` with `env`, failing on a non-zero exit; returns the result."""
    return lambda *args, stdin=None: subprocess.run(
        [binary, *args], env=env, input=stdin, check=True, capture_output=True, text=True)


def serve(binary, env, port):
    """Starts `guichet serve` and waits (up to ten seconds) until /healthz answers 200."""
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.05)
    server.kill()
    raise SystemExit(f"guichet did not answer on port {port}")


def field(page, name):
    """The value of the form field `name` in an HTML page ("" when there is none)."""
    import re
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    return found.group(1).replace("&#38;", "&").replace("&amp;", "&") if found else ""


def percentile(values, p):
    """The `p` quantile (0 to 1) of `values`."""
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def memory(pid):
    """The process's resident memory now and at its peak, in MiB: "RSS N MiB, peak M MiB"."""
    import re
    status = open(f"/proc/{pid}/status").read()
    rss = {k: int(re.search(rf"{k}:\s+(\d+)", status).group(1)) // 1024 for k in ("VmRSS", "VmHWM")}
    return f"RSS {rss['VmRSS']} MiB, peak {rss['VmHWM']} MiB"


def members(guichet, work, count, password):
    """Adds "modele" with `password`, then imports `count` members m0… with its hash (one
    Argon2id for all)."""
    import os
    import sqlite3
    guichet("member", "add", "modele", "--email", "modele@chu.example.fr", "--password-stdin", stdin=password + "\n")
    phc = sqlite3.connect(f"{work}/g.db").execute("SELECT password_hash FROM accounts WHERE identifier = 'modele'").fetchone()[0]
    csv = os.path.join(work, "members.csv")
    with open(csv, "w") as f:
        f.write("identifier,email,name,role,groups,password_hash\n")
        for n in range(count):
            f.write(f'm{n},m{n}@chu.example.fr,Membre {n},member,,"{phc}"\n')
    guichet("member", "import", csv)
