"""A local Azure: identity endpoints, token issuer, Azure Files REST with RBAC and Shared Key.

Never imports keyless client code (files, smb, identity): both sides share only ``keyless.protocol``,
so each can check the other.
"""
