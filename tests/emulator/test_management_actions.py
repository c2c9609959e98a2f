"""The routing table's FileService / FileShare rows against the built-in role tables: every management
operation needs one management action and one backup-semantics data action, so no data role alone and no
management role alone is enough, and a pair of the right ones always is."""

from __future__ import annotations

import pytest

from keyless.emulator import management_actions as mgmt
from keyless.emulator.config import MANAGEMENT_ROLE_ACTIONS
from keyless.emulator.files import routes
from keyless.emulator.files.model import Op
from keyless.protocol import ACTION_READ_BACKUP, ACTION_WRITE_BACKUP, ROLE_DATA_ACTIONS

MANAGING = [op for op in [*routes.SERVICE_OPS.values(), *routes.SHARE_OPS.values()] if op.manages]


def test_every_service_and_share_row_but_permissions_is_a_management_operation() -> None:
    names = {op.name for op in MANAGING}
    assert names >= {"ListShares", "GetFileServiceProperties", "SetFileServiceProperties", "CreateShare",
                     "GetShareProperties", "DeleteShare", "SnapshotShare", "LeaseShare", "SetShareMetadata",
                     "GetShareMetadata", "SetShareProperties", "GetShareStats", "GetShareAcl", "SetShareAcl"}
    assert not names & {"CreatePermission", "GetPermission"}


@pytest.mark.parametrize("op", MANAGING, ids=lambda op: f"{op.name}-{sorted(op.actions)[0][-12:]}")
def test_a_management_operation_needs_one_action_of_each_kind(op: Op) -> None:
    assert len(op.actions & mgmt.ALL) == 1
    assert len(op.actions & {ACTION_READ_BACKUP, ACTION_WRITE_BACKUP}) == 1
    assert len(op.actions) == 2
    for role, actions in [*ROLE_DATA_ACTIONS.items(), *MANAGEMENT_ROLE_ACTIONS.items()]:
        assert not op.actions <= actions, f"{role} alone would allow {op.name}"
    writer = MANAGEMENT_ROLE_ACTIONS["Storage Account Contributor"] \
        | ROLE_DATA_ACTIONS["Storage File Data Privileged Contributor"]
    assert op.actions <= writer


def test_reader_pairs_allow_the_reads_only() -> None:
    reader = MANAGEMENT_ROLE_ACTIONS["Reader"] | ROLE_DATA_ACTIONS["Storage File Data Privileged Reader"]
    allowed = {op.name for op in MANAGING if op.actions <= reader}
    assert allowed == {"ListShares", "GetFileServiceProperties", "GetShareProperties", "GetShareMetadata",
                       "GetShareStats", "GetShareAcl"}
