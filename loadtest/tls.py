"""A self-signed certificate for 127.0.0.1 (and localhost), made by the openssl command
line for the local stack's TLS listener: nothing to install, valid a week, never used
anywhere but on this machine. Clients trust it by its file (curl --cacert, an
ssl.SSLContext's load_verify_locations)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def openssl_available() -> bool:
    return Path(OPENSSL).exists()


def make_certificate(folder: Path, days: int = 7) -> tuple[Path, Path]:
    """(certificate, key) in `folder`, for 127.0.0.1 and localhost."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "tls-cert.pem", folder / "tls-key.pem"
    subprocess.run(
        [
            OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
            "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    key.chmod(0o644)  # nginx's workers (nobody, under a root master) read it
    return cert, key
