"""``keyless test``: can this machine's managed identity reach the file share over REST, without keys?

The field report's PowerShell check, cross-platform, with every failure explained::

    === Testing Managed Identity Access ===
    Host: vm01
    Storage: myaccount
    Share: myshare

    [1/3] Getting token... OK
    [2/3] Creating test directory... OK
    [3/3] Writing test file... OK

    File created: mi-test/test-vm01.txt
    Read back: 52 bytes, identical

    === SUCCESS ===
    Managed identity can access the file share via REST API.

Step 2 prints ``EXISTS`` when the directory is already there. On failure the step prints ``FAILED``,
followed by the HTTP status, the service's error code, what happened and what to do, and the command exits
with the code for that cause:

====  ===========================================================================================
code  cause
====  ===========================================================================================
0     success: token, directory, file written, read back identical
1     any other failure (unexpected error)
2     usage error (bad option, unreadable ``--emulator`` file)
3     no token: managed identity not assigned, IMDS / token endpoint unreachable, identity not found
4     400 from the service, e.g. ``MissingRequiredHeader`` (the ``x-ms-file-request-intent`` header)
5     401: the token was refused, even after a fresh one or with no other to try (audience, clock, tenant)
6     403: the identity lacks the role (Storage File Data Privileged Contributor at the share), or the
      role was assigned less than 5-30 minutes ago
7     404: the share (or the account) does not exist
8     no reply: DNS, TCP, TLS, proxy; or the address is not one a token may be sent to
9     the file read back differs from what was written (or an integrity check failed)
10    the service kept failing (5xx, 408, 429) after retries
11    409: a conflict other than "the directory exists" (e.g. a *file* named like the test directory)
====  ===========================================================================================
"""

from __future__ import annotations

import datetime
import socket
import sys
from typing import Any

import click

from keyless.cli import _files_common as common
from keyless.cli import hints
from keyless.files import errors as fe
from keyless.files.auth import BearerAuth
from keyless.files.urls import CLOUD_SUFFIXES, PUBLIC_SUFFIX, join_path, share_url


def _fail(step: str, error: BaseException) -> int:
    """Print the failure of a step and return its exit code."""
    click.secho(" FAILED", fg="red")
    if isinstance(error, fe.FilesError):
        if error.status:
            click.secho(
                f"Error: HTTP {error.status}{' ' + error.code if error.code else ''}", fg="red", err=True
            )
        click.echo(f"Error: {error.message}", err=True)
        remedy = hints.remedy_for(error)
        if remedy:
            click.echo(f"What to do: {remedy}", err=True)
    else:
        click.echo(f"Error: {type(error).__name__}: {error}", err=True)
    code = common.exit_code_for(error)
    click.echo(f"(step '{step}' failed; exit code {code})", err=True)
    return code


@click.command("test")
@click.option("--account", required=True, help="Storage account name.")
@click.option("--share", required=True, help="File share name.")
@click.option("--client-id", default=None, help="Client id of a user-assigned managed identity.")
@click.option("--object-id", default=None, help="Object (principal) id of a user-assigned managed identity.")
@click.option("--resource-id", default=None, help="ARM resource id of a user-assigned managed identity.")
@click.option("--dir", "directory", default="mi-test", show_default=True, help="Test directory to create.")
@click.option(
    "--cleanup", is_flag=True, help="Delete the test file (and the directory if created) afterwards."
)
@click.option(
    "--cloud",
    type=click.Choice(sorted(CLOUD_SUFFIXES)),
    default="public",
    show_default=True,
    help="Which Azure cloud the account lives in.",
)
@click.option(
    "--emulator",
    "emulator_path",
    envvar=common.EMULATOR_ENV,
    default=None,
    help="emulator.json (or its directory) of a keyless emulator to test against [env KEYLESS_EMULATOR].",
)
def test_command(
    account: str,
    share: str,
    client_id: str | None,
    object_id: str | None,
    resource_id: str | None,
    directory: str,
    cleanup: bool,
    cloud: str,
    emulator_path: str | None,
) -> None:
    """Check that the managed identity can reach the share over REST: token, directory, file, read-back."""
    sys.exit(
        run_test(
            account,
            share,
            client_id=client_id,
            object_id=object_id,
            resource_id=resource_id,
            directory=directory,
            cleanup=cleanup,
            cloud=cloud,
            emulator_path=emulator_path,
        )
    )


def run_test(
    account: str,
    share: str,
    *,
    client_id: str | None = None,
    object_id: str | None = None,
    resource_id: str | None = None,
    directory: str = "mi-test",
    cleanup: bool = False,
    cloud: str = "public",
    emulator_path: str | None = None,
) -> int:
    emu = common.load_emulator(emulator_path)
    host = socket.gethostname().split(".")[0] or "localhost"
    suffix = CLOUD_SUFFIXES.get(cloud, PUBLIC_SUFFIX)
    target = share_url(account, share, emulator_url=emu.files_url if emu else None, suffix=suffix)

    click.secho("\n=== Testing Managed Identity Access ===", fg="cyan")
    click.echo(f"Host: {host}")
    click.echo(f"Storage: {account}")
    click.echo(f"Share: {share}")
    if emu:
        click.echo(f"Emulator: {emu.files_url}")
    click.echo("")

    # [1/3] token
    click.echo("[1/3] Getting token...", nl=False)
    try:
        credential: Any = common.make_credential(client_id, object_id, resource_id, emu)
        client = common.build_client(target, credential, emu)
        auth = client.auth
        assert isinstance(auth, BearerAuth)
        auth.token()
    except click.UsageError:
        raise
    except Exception as exc:
        error = exc if isinstance(exc, fe.FilesError) else fe.TokenError(f"{type(exc).__name__}: {exc}")
        return _fail("getting token", error)
    click.secho(" OK", fg="green")

    # [2/3] directory
    directory = join_path(directory)
    click.echo("[2/3] Creating test directory...", nl=False)
    try:
        created = client.mkdir(directory, parents=True, exist_ok=True)
    except Exception as exc:
        return _fail("creating test directory", exc)
    if created:
        click.secho(" OK", fg="green")
    else:
        click.secho(" EXISTS", fg="yellow")

    # [3/3] file, then read it back
    name = f"test-{host}.txt"
    path = join_path(directory, name)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    content = f"Test from {host} at {stamp}".encode()
    click.echo("[3/3] Writing test file...", nl=False)
    try:
        client.create_file(path, len(content), content_type="text/plain; charset=utf-8")
        client.put_range(path, 0, content)
        back = client.read_bytes(path)
    except Exception as exc:
        return _fail("writing test file", exc)
    if back != content:
        return _fail(
            "writing test file",
            fe.IntegrityError(
                f"read back {len(back)} bytes that differ from the {len(content)} bytes written to {path}"
            ),
        )
    click.secho(" OK", fg="green")
    click.secho(f"\nFile created: {path}", fg="bright_black")
    click.secho(f"Read back: {len(back)} bytes, identical", fg="bright_black")

    if cleanup:
        try:
            client.delete_file(path)
            if created:
                client.delete_directory(directory)
            click.secho("Cleaned up the test file" + (" and directory" if created else ""), fg="bright_black")
        except fe.FilesError as exc:
            # Writing worked, which is what the test is about; a refused delete is worth a warning only.
            click.secho(f"Warning: cleanup failed: {exc.message}", fg="yellow", err=True)

    click.secho("\n=== SUCCESS ===", fg="green")
    click.echo("Managed identity can access the file share via REST API.\n")
    client.close()
    return common.EXIT_OK
