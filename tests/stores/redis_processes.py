"""Real Redis set-ups beyond one plain server: TLS with certificates made here, and Sentinel.

Every process listens on a free loopback port; a subprocess gives no event to await, so
readiness is polled (a PING answered), never slept for.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import RedisServer, free_port


@dataclass(frozen=True)
class Certs:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context

    def gateway_env(self) -> dict[str, str]:
        """The gateway's TLS settings as environment overrides."""
        return {
            "GATEWAY_REDIS__CA_FILE": str(self.ca),
            "GATEWAY_REDIS__CERT_FILE": str(self.client_cert),
            "GATEWAY_REDIS__KEY_FILE": str(self.client_key),
        }

    def client_options(self) -> dict[str, Any]:
        """redis-py's keyword arguments for a client of a server with these certificates."""
        return {
            "ssl_ca_certs": str(self.ca),
            "ssl_certfile": str(self.client_cert),
            "ssl_keyfile": str(self.client_key),
        }


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_certs(directory: Path) -> Certs:
    """A fresh CA and the certificates it signs, valid for a day."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway tests CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": directory / "ca.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, role)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        paths[f"{role}_cert"] = directory / f"{role}.pem"
        paths[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{role}_key"] = directory / f"{role}.key"
        _write_key(key, paths[f"{role}_key"])
    return Certs(**paths)


async def _answers(port: int, context: ssl.SSLContext | None = None) -> bool:
    """Whether a Redis (or Sentinel) on ``port`` answers PING."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    except OSError:
        return False
    try:
        writer.write(b"PING\r\n")
        return (await reader.readline()).startswith((b"+PONG", b"-NOAUTH"))
    except (OSError, ssl.SSLError):
        return False
    finally:
        writer.close()


async def _until_answers(port: int, context: ssl.SSLContext | None = None) -> None:
    for _ in range(200):
        if await _answers(port, context):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"redis on {port} did not start")


class TlsRedisServer(RedisServer):
    """A ``redis-server`` that speaks TLS only (``--tls-port``; the plain port is off) and
    asks clients for a certificate; ``stop``/``start`` keep port, data and certificates."""

    def __init__(self, binary: str, workdir: str) -> None:
        super().__init__(binary, workdir)
        self.certs = make_certs(Path(workdir) / "certs")
        self.url = f"rediss://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        c = self.certs
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            *("--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(c.server_cert), "--tls-key-file", str(c.server_key)),
            *("--tls-ca-cert-file", str(c.ca), "--tls-auth-clients", "yes"),
            *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
            *("--dir", self.workdir, "--protected-mode", "no"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await _until_answers(self.port, c.client_context())


@dataclass
class SentinelGroup:
    """One master, one replica, three Sentinels watching them as ``master_name``."""

    binary: str
    workdir: Path
    master_name: str = "gwmaster"
    down_after_ms: int = 2000  # a loaded test machine must not look down before the kill

    def __post_init__(self) -> None:
        self.ports = {"master": free_port(), "replica": free_port()}
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    @property
    def sentinels(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    async def _spawn(self, name: str, *args: str) -> None:
        self.procs[name] = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )

    async def start(self) -> None:
        for role in ("master", "replica"):
            directory = self.workdir / role
            directory.mkdir(parents=True, exist_ok=True)
            args = [self.binary, "--port", str(self.ports[role]), "--bind", "127.0.0.1"]
            args += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
            args += ["--protected-mode", "no"]
            if role == "replica":
                args += ["--replicaof", "127.0.0.1", str(self.ports["master"])]
            await self._spawn(role, *args)
            await _until_answers(self.ports[role])
        for index, port in enumerate(self.sentinel_ports):
            conf = self.workdir / f"sentinel{index}.conf"  # Sentinel rewrites its own file
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.workdir}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {self.ports['master']} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master_name} 5000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            await self._spawn(f"sentinel{index}", self.binary, str(conf), "--sentinel")
            await _until_answers(port)

    async def master_port(self) -> int:
        """The master's port as the first Sentinel says."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.sentinel_ports[0])
        try:
            command = f"SENTINEL get-master-addr-by-name {self.master_name}"
            writer.write(command.encode() + b"\r\n")
            lines = [await reader.readline() for _ in range(5)]  # *2, $n, host, $n, port
            return int(lines[4])
        finally:
            writer.close()

    async def replica_in_sync(self) -> None:
        """Until the replica reports its link to the master up (the failover needs it)."""
        for _ in range(200):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.ports["replica"])
            writer.write(b"INFO replication\r\n")
            length = int((await reader.readline())[1:])  # a bulk string: $length
            body = await reader.readexactly(length + 2)
            writer.close()
            if b"master_link_status:up" in body:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the replica never synced")

    async def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def stop(self) -> None:
        for name in list(self.procs):
            await self.kill(name)
