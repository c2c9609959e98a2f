"""``import azfilesauth``: Microsoft's AzFilesAuthenticator Python module, implemented by keyless.

See ``keyless.smb.pymodule`` for what is the same and what differs.
"""

from keyless.smb.pymodule import (
    azfiles_clear,
    azfiles_list,
    azfiles_set_oauth,
    get_oauth_token,
    get_workload_identity_token,
    init_new_user,
)

__all__ = ["azfiles_clear", "azfiles_list", "azfiles_set_oauth", "get_oauth_token",
           "get_workload_identity_token", "init_new_user"]
