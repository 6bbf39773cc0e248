"""Everything the locked-down broker reads, in one directory: accounts, ACLs and (for a trial) TLS files.

docker-compose's ``broker-init`` service runs this on every start (``python -m safewatch.registry.broker_setup``),
as a Debian host's setup may: service accounts from the environment, gateway accounts from the registry,
the health check's ACL, and a self-signed CA with a server certificate unless the operator put their own
``tls/server.crt`` and ``tls/server.key`` there. Re-running it after registering gateways, then sending the
broker SIGHUP, applies the new accounts without a restart (docs/broker-acl.md).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import click

from safewatch.registry.broker import BrokerAccount, mosquitto_hash, write_broker_files

PASSWORD_ENV_PREFIX = "SAFEWATCH_BROKER_PASSWORD_"  # the same convention as `safewatch gateways broker-files`
MIN_SERVICE_PASSWORD = 16
TRIAL_CA_NAME = "SafeWatch trial CA"


def password_env(name: str) -> str:
    """The environment variable that holds service account ``name``'s password."""
    return PASSWORD_ENV_PREFIX + name.upper().replace("-", "_").replace(".", "_")


def service_accounts(required: Iterable[str], optional: Iterable[str], env: Mapping[str, str]) -> list[BrokerAccount]:
    """Hashed service accounts: every ``required`` one must have a strong password set, an ``optional`` one
    exists only when its password is set (the demo's simulator)."""
    accounts = []
    for name, needed in [*((n, True) for n in required), *((n, False) for n in optional)]:
        password = env.get(password_env(name), "")
        if not password:
            if needed:
                raise ValueError(f"set {password_env(name)} to the password of broker account {name} "
                                 "(scripts/make-env writes strong ones into .env)")
            continue
        if len(password) < MIN_SERVICE_PASSWORD:
            raise ValueError(f"{password_env(name)} is shorter than {MIN_SERVICE_PASSWORD} characters; "
                             "use a generated one (scripts/make-env)")
        accounts.append(BrokerAccount(name, mosquitto_hash(password)))
    return accounts


def _subject_alt_names(hostnames: Sequence[str]) -> str:
    names = []
    for host in hostnames:
        try:
            names.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            names.append(f"DNS:{host}")
    return ",".join(names)


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()[-400:]}")


def trial_certificates(tls_dir: Path, *, hostnames: Sequence[str], days: int = 825) -> bool:
    """A self-signed CA (``ca.crt``) and a server certificate for ``hostnames``, unless ``server.crt`` exists.

    True when it made them. The CA's key is deleted once the server certificate is signed: a trial CA that
    can sign nothing more cannot be used to impersonate anything else. Gateways trust ``ca.crt``.
    """
    if (tls_dir / "server.crt").exists():
        return False
    if not hostnames:
        raise ValueError("name the broker's host (--hostname) for the trial certificate's subjectAltName")
    tls_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tls_dir) as work:
        w = Path(work)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256")
        _openssl("req", "-x509", *ec, "-days", str(days), "-keyout", str(w / "ca.key"), "-out", str(w / "ca.crt"),
                 "-subj", f"/CN={TRIAL_CA_NAME}")
        _openssl("req", *ec, "-keyout", str(w / "server.key"), "-out", str(w / "server.csr"),
                 "-subj", f"/CN={hostnames[0]}")
        (w / "ext.cnf").write_text(f"subjectAltName={_subject_alt_names(hostnames)}\nbasicConstraints=CA:FALSE\n"
                                   "extendedKeyUsage=serverAuth\n", encoding="utf-8")
        _openssl("x509", "-req", "-in", str(w / "server.csr"), "-CA", str(w / "ca.crt"), "-CAkey", str(w / "ca.key"),
                 "-CAcreateserial", "-days", str(days), "-sha256", "-extfile", str(w / "ext.cnf"),
                 "-out", str(w / "server.crt"))
        (w / "server.key").chmod(0o600)
        for name in ("ca.crt", "server.key", "server.crt"):  # the certificate last: its presence means done
            (w / name).replace(tls_dir / name)
    return True


def install_operator_certificates(source: Path, tls_dir: Path) -> bool:
    """Copy the operator's ``server.crt``/``server.key`` (and ``ca.crt`` if given) from ``source``, replacing
    whatever is in ``tls_dir``; False when ``source`` holds no certificate (then a trial one is made)."""
    if not (source / "server.crt").is_file() or not (source / "server.key").is_file():
        return False
    tls_dir.mkdir(parents=True, exist_ok=True)
    names = ["server.key", "server.crt"]
    if (source / "ca.crt").is_file():
        names.insert(0, "ca.crt")
    elif (tls_dir / "ca.crt").exists():  # a trial CA with a public certificate would confuse gateways
        (tls_dir / "ca.crt").unlink()
    for name in names:
        tmp = tls_dir / f".{name}.tmp"
        tmp.write_bytes((source / name).read_bytes())
        tmp.chmod(0o600 if name.endswith(".key") else 0o644)
        tmp.replace(tls_dir / name)
    return True


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give the broker's user the files (it drops root before reading them)."""
    for p in (root, *root.rglob("*")):
        os.chown(p, uid, gid)


def setup_broker_dir(out_dir: Path, *, accounts: list[BrokerAccount], hostnames: Sequence[str],
                     owner: tuple[int, int] | None = None, operator_tls: Path | None = None) -> list[Path]:
    """Write the accounts' files; the operator's certificate from ``operator_tls`` when there is one, else
    trial TLS files if none yet; hand everything to ``owner`` (uid, gid)."""
    written = write_broker_files(out_dir, accounts)
    tls = out_dir / "tls"
    operators = operator_tls is not None and install_operator_certificates(operator_tls, tls)
    if operators or trial_certificates(tls, hostnames=hostnames):
        written.append(tls / "server.crt")
    if owner is not None:
        chown_tree(out_dir, *owner)
    return written


def _owner(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    uid, _, gid = value.partition(":")
    return int(uid), int(gid or uid)


@click.command("broker-setup")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The directory the broker reads (/mosquitto/config/safewatch in docker-compose).")
@click.option("--service", "services", multiple=True, metavar="NAME",
              help=f"A service account whose password is in {PASSWORD_ENV_PREFIX}<NAME> (repeatable).")
@click.option("--optional-service", "optional", multiple=True, metavar="NAME",
              help="A service account made only when its password variable is set (the demo's simulator).")
@click.option("--hostname", "hostnames", multiple=True, metavar="NAME",
              help="The broker's host name or address as gateways dial it (trial certificate only; repeatable).")
@click.option("--tls-from", "operator_tls", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="A directory with the operator's server.crt, server.key (and ca.crt); empty or absent: a "
                   "trial certificate is made once.")
@click.option("--owner", default=None, metavar="UID[:GID]", help="Give the files to the broker's user.")
@click.option("--registry/--no-registry", default=True, show_default=True,
              help="Read the gateways' accounts from the database (SAFEWATCH_DB__URL).")
def broker_setup_cmd(out_dir: Path, services: tuple[str, ...], optional: tuple[str, ...],
                     hostnames: tuple[str, ...], operator_tls: Path | None, owner: str | None,
                     registry: bool) -> None:
    """Write the broker's accounts, ACLs and (if absent) trial TLS files; then `kill -HUP` a running broker."""
    try:
        accounts = service_accounts(services, optional, os.environ)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    gateways: list[BrokerAccount] = []
    if registry:
        import psycopg

        from safewatch.registry.broker import gateway_accounts
        from safewatch.settings import Settings

        with psycopg.connect(Settings().db.url) as conn:
            gateways = gateway_accounts(conn)
    written = setup_broker_dir(out_dir, accounts=accounts + gateways, hostnames=hostnames or ("localhost",),
                               owner=_owner(owner), operator_tls=operator_tls)
    click.echo(f"wrote {len(written)} files in {out_dir}: {len(gateways)} gateways, "
               f"{len(accounts)} service accounts ({', '.join(a.username for a in accounts)}). "
               "A running broker applies them on SIGHUP.")


if __name__ == "__main__":
    broker_setup_cmd()
