"""keyless: Azure file shares with managed identities instead of storage account keys."""

__version__ = "0.1.0"
