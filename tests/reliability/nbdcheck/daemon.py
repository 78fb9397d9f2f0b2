"""The managed-disks daemon as a child process that can be killed with SIGKILL and started
again on the same configuration, as a crash and a reboot would."""

import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
READY_LINE = "ManagedDisks ready"


def find_daemon_dll(explicit=None):
    """managed-disks.dll: the one given, $MANAGED_DISKS_DLL, or the Release build in the tree
    (built here if missing)."""
    path = explicit or os.environ.get("MANAGED_DISKS_DLL")
    if path:
        path = Path(path)
        if path.is_dir():
            path = path / "managed-disks.dll"
        if not path.is_file():
            raise SystemExit(f"no managed-disks.dll at {path}")
        return path
    built = sorted(REPO.glob("src/ManagedDisks.Daemon/bin/Release/net*/managed-disks.dll"))
    if not built:
        subprocess.run(["dotnet", "build", "-c", "Release", str(REPO / "src/ManagedDisks.Daemon")],
                       check=True, stdout=subprocess.DEVNULL)
        built = sorted(REPO.glob("src/ManagedDisks.Daemon/bin/Release/net*/managed-disks.dll"))
    return built[-1]


def write_config(work, disks):
    """A disks.toml under `work` serving `disks` ([(name, size, extra_toml)]) on a Unix socket.
    Every disk uses the platform-managed key, so every sector is AES-256-XTS encrypted."""
    state = work / "state"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    lines = ["[daemon]", f'state_dir = "{state}"', f'listen = ["unix:{state}/nbd.sock"]',
             f'admin_socket = "{state}/admin.sock"', ""]
    for name, size, extra in disks:
        lines += ["[[disk]]", f'name = "{name}"', f'size = "{size}"', extra, ""]
    config = work / "disks.toml"
    config.write_text("\n".join(lines))
    return config


class Daemon:
    """One configuration; each start() is a new process appending to the same log."""

    def __init__(self, dll, config, log_path):
        self.dll = Path(dll)
        self.config = Path(config)
        self.log_path = Path(log_path)
        self.socket = self.config.parent / "state" / "nbd.sock"
        self.process = None

    def uri(self, export):
        return f"nbd+unix:///{export}?socket={self.socket}"

    @property
    def pid(self):
        return self.process.pid

    def start(self, timeout=120):
        """Starts the daemon and returns once it logs that it is ready (the condition, not a guess)."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        env = dict(os.environ, Logging__LogLevel__Default="Information", Logging__LogLevel__Microsoft="Warning")
        self.process = subprocess.Popen(["dotnet", str(self.dll), "serve", "--config", str(self.config)],
                                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if READY_LINE.encode() in f.read():
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.process.returncode} before it was ready; see {self.log_path}")
            time.sleep(0.05)
        raise RuntimeError(f"the daemon was not ready after {timeout}s; see {self.log_path}")

    def kill9(self):
        """SIGKILL: no shutdown code runs, nothing is flushed by the daemon."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout=30):
        """SIGTERM, as systemd stops the service; SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()


class NbdkitMemory:
    """A control: `nbdkit memory` keeps the disk in its own memory, so SIGKILL loses everything
    written. The checker must report lost bytes against it, or it proves nothing."""

    def __init__(self, work, size_mib, log_path):
        self.socket = Path(work) / "nbdkit.sock"
        self.size_mib = size_mib
        self.log_path = Path(log_path)
        self.process = None

    def uri(self, export):
        return f"nbd+unix:///{export}?socket={self.socket}"

    def start(self, timeout=30):
        self.socket.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(["nbdkit", "-f", "-U", str(self.socket), "memory", f"size={self.size_mib}M"],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nbdkit did not start; see {self.log_path}")
            time.sleep(0.02)

    kill9 = Daemon.kill9
    stop = Daemon.stop
