"""Check that the GPU / TPU extras resolve against the pinned JAX (no accelerator needed, no big downloads).

For each extra of pyproject (`cuda` = jax[cuda12], `cuda13`, `tpu`) read the installed jax's own
Requires-Dist for that extra and ask the package index (`pip index versions`) whether a release
satisfying each requirement exists. Exit 1 naming what does not resolve. A full resolution was
checked by hand with `pip install --dry-run -c constraints.txt 'jax[cuda12]==0.10.2'` (3 GB of wheels).
"""

import importlib.metadata
import re
import subprocess
import sys

from packaging.requirements import Requirement

EXTRAS = ("cuda12", "cuda13", "tpu")


def available(name: str) -> list[str] | None:
    """The releases the index lists for ``name``; None when the index could not be asked (no network)."""
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None
    match = re.search(r"Available versions: (.*)", out.stdout)
    if match:
        return [v.strip() for v in match.group(1).split(",")]
    return [] if "No matching distribution" in out.stderr else None


def main() -> int:
    jax_version = importlib.metadata.version("jax")
    failures = []
    for extra in EXTRAS:
        requirements = [Requirement(r) for r in importlib.metadata.requires("jax") or []]
        needed = [r for r in requirements if r.marker is not None and r.marker.evaluate({"extra": extra})]
        for requirement in needed:
            if requirement.name in ("jaxlib", "requests"):
                continue  # installed / generic
            listed = available(requirement.name)
            if listed is None:
                print(f"jax[{extra}]: could not query the package index for {requirement.name}: not checked")
                continue
            versions = [v for v in listed if requirement.specifier.contains(v, prereleases=False)]
            status = f"{versions[0]}" if versions else "NONE"
            print(f"jax[{extra}] ({jax_version}) needs {requirement}: newest matching release {status}")
            if not versions:
                failures.append(f"{extra}: {requirement}")
    if failures:
        print("extras that do not resolve: " + "; ".join(failures))
        return 1
    print("all accelerator extras resolve against jax", jax_version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
