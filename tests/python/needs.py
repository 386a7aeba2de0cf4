#!/usr/bin/env python3
# tests/python/needs.py — which Python packages a test script needs, found without importing them.
#
# A test script calls require(...) before importing numpy, PIL or torch: when one is not
# installed for this interpreter it prints
#     skipped: PyTorch not available
# (and a second line saying where it looked and which Debian package provides it) and
# exits 77, which ctest reports as Skipped (SKIP_RETURN_CODE 77 in tests/CMakeLists.txt).
# A package that is installed but fails to import is not a skip: the import fails the test.
#
# tests/CMakeLists.txt runs `needs.py --missing MODULE...` at configure time, to say which
# test tiers will be skipped; it imports nothing (importlib.util.find_spec only locates).
import importlib.util
import sys

SKIPPED = 77  # ctest's SKIP_RETURN_CODE for every Python test

# module -> (what the skip message calls it, the Debian package)
KNOWN = {
    "torch": ("PyTorch", "python3-torch"),
    "torchvision": ("torchvision", "python3-torchvision"),
    "numpy": ("numpy", "python3-numpy"),
    "PIL": ("Pillow (PIL)", "python3-pil"),
}


def missing(*modules):
    """The modules (top-level names) this interpreter cannot find, in the order given."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require(*modules):
    """Exit 77 with 'skipped: <first missing> not available' unless every module is installed."""
    gone = missing(*modules)
    if not gone:
        return
    name, package = KNOWN.get(gone[0], (gone[0], "python3-" + gone[0].lower()))
    print(f"skipped: {name} not available")
    print(f"  ({sys.executable} has no module {', '.join(gone)}; Debian: apt-get install "
          f"{' '.join(KNOWN.get(m, (m, 'python3-' + m.lower()))[1] for m in gone)}, or configure with "
          f"-DPython3_EXECUTABLE=/usr/bin/python3)")
    sys.stdout.flush()
    sys.exit(SKIPPED)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--missing":
        sys.exit("usage: needs.py --missing MODULE...   (prints the missing ones, ';'-separated)")
    print(";".join(missing(*sys.argv[2:])))
