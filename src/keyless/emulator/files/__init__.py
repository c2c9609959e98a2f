"""The Azure Files REST data plane, split along the seams Azurite uses: ``dispatch`` (entry point and
routing), ``routes`` (the operation table), ``urls`` and ``headers`` (request parsing into typed values),
``replies`` and ``xml_bodies`` (answers), and one module of handlers per resource.
"""

from keyless.emulator.files.dispatch import handle_files_request
from keyless.emulator.files.model import DELETE, READ, WRITE, Security

__all__ = ["DELETE", "READ", "WRITE", "Security", "handle_files_request"]
