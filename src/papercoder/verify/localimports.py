"""Names imported from the repository's own modules (verify's static check).

The resolution (star re-exports, submodules, relative imports, the script's own folder) lives
in the base layer, ``papercoder.crosscheck``, which the pipeline's cross-module check uses too;
this module is verify's name for it.
"""

from __future__ import annotations

from papercoder.crosscheck import (
    LocalImportProblem,
    ModuleInfo,
    Resolver,
    check_local_imports,
    module_name,
)

__all__ = ["LocalImportProblem", "ModuleInfo", "Resolver", "check_local_imports",
           "module_name"]
