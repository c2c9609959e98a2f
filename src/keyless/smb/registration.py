"""Record how a ticket was made, so ``keyless agent`` / ``azfilesrefresh`` can make the next one.

Shared by ``keyless smb set`` and the ``azfilesauthmanager`` drop-in; a failure to record only warns (the
ticket is stored either way).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, TextIO

from keyless.smb import state
from keyless.smb.errors import SmbError


def source_of(spec: Any, env: dict[str, str] | os._Environ[str] | None = None) -> state.Source:
    env = os.environ if env is None else env
    if spec.kind == "token":
        return state.Source(state.MANUAL)  # the token itself is never recorded
    if spec.kind == "workload":
        # Resolve what the identity library would take from the environment: the agent has none of it.
        token_file = spec.token_file or env.get("AZURE_FEDERATED_TOKEN_FILE")
        return state.Source("workload", client_id=spec.client_id or env.get("AZURE_CLIENT_ID"),
                            tenant_id=spec.tenant_id or env.get("AZURE_TENANT_ID"),
                            token_file=str(Path(token_file).resolve()) if token_file else None,
                            authority_host=spec.authority_host or env.get("AZURE_AUTHORITY_HOST"))
    return state.Source(spec.kind, client_id=spec.client_id)


def register(state_file: str | None, uri: str, endpoint: Any, spec: Any, cache_name: str,
             config_path: str | None, emulator_path: str | None, err: TextIO) -> None:
    source = source_of(spec)
    reg = state.Registration(
        uri=uri, account=endpoint.account, server=str(endpoint.server), ccache=cache_name, source=source,
        config=str(Path(config_path).resolve()) if config_path else None,
        emulator=str(Path(emulator_path).resolve()) if emulator_path else None,
        registered_at=time.time())
    try:
        state.register(state.state_path(state_file), reg)
    except SmbError as exc:
        print(f"warning ({exc.cause}): not registered for refresh by keyless agent: {exc.message}"
              " (pass --no-register to skip, or --state FILE)", file=err, flush=True)
        return
    if source.kind == state.MANUAL:
        print("note: a ticket made from a token given directly cannot be refreshed by keyless agent; "
              "use an identity option (--system, --imds-client-id, ...) for automatic refresh.",
              file=err, flush=True)
