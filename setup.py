"""Build script for fastnn's native extension, fastnn._core (C++17, OpenMP).

Metadata lives in pyproject.toml; this file only describes the extension, because the OpenMP flags
depend on the compiler that setuptools picks. Set FASTNN_NO_OPENMP=1 to build a serial extension,
FASTNN_SANITIZE=1 to build one instrumented with AddressSanitizer and UndefinedBehaviorSanitizer
(for .ci/sanitize; it only loads with the compiler's ASan runtime preloaded).
"""
import os
import sys
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

# -O3, but no flag that targets the build machine's CPU or relaxes IEEE arithmetic: the wheel must
# run on any x86-64 CPU and keep IEEE semantics (SIMD variants are chosen at run time).
# -fno-math-errno only stops libm calls from setting errno (no result changes); without it GCC
# cannot vectorise loops that call sqrt.
UNIX_OPT = ["-O3", "-fno-math-errno", "-fvisibility=hidden"]


# Homebrew installs libomp under /opt/homebrew on Apple silicon and /usr/local on Intel Macs.
LIBOMP_PREFIXES = ("/opt/homebrew/opt/libomp", "/usr/local/opt/libomp")


def find_libomp():
    """The libomp prefix to build against on macOS: $LIBOMP_PREFIX, else the first Homebrew
    prefix that has omp.h, else None."""
    candidates = [os.environ["LIBOMP_PREFIX"]] if os.environ.get("LIBOMP_PREFIX") else []
    for prefix in candidates + list(LIBOMP_PREFIXES):
        if os.path.isfile(os.path.join(prefix, "include", "omp.h")):
            return prefix
    return None


def openmp_flags(compiler_type, compiler_cmd):
    """(compile, link) flags enabling OpenMP for this compiler, or ([], []) when opted out."""
    if os.environ.get("FASTNN_NO_OPENMP", "") not in ("", "0"):
        return [], []
    if compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin" and "clang" in " ".join(compiler_cmd):
        # Apple clang has no -fopenmp driver flag; libomp (e.g. from Homebrew) provides the runtime.
        prefix = find_libomp()
        if prefix is None:
            print("fastnn: libomp not found (looked in $LIBOMP_PREFIX and "
                  f"{' and '.join(LIBOMP_PREFIXES)}): building a SERIAL extension, one thread. "
                  "For the parallel build: `brew install libomp`, then reinstall.", file=sys.stderr)
            return [], []
        return (["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                [f"-L{prefix}/lib", "-lomp", f"-Wl,-rpath,{prefix}/lib"])
    return ["-fopenmp"], ["-fopenmp"]


def no_compiler_message(exc):
    """What to install when the C++ compiler cannot be run, per operating system."""
    if sys.platform == "win32":
        how = "Visual Studio Build Tools with the 'Desktop development with C++' workload"
    elif sys.platform == "darwin":
        how = "the Xcode command line tools (`xcode-select --install`) and `brew install libomp`"
    else:
        how = ("a C++17 compiler with OpenMP and the Python headers, e.g. "
               "`sudo apt install g++ python3-dev` (Debian/Ubuntu) or "
               "`sudo dnf install gcc-c++ python3-devel` (Fedora)")
    return (f"fastnn needs a C++ compiler to build its native extension ({exc}). "
            f"Install {how}, then run the install again.")


def sanitize_flags(compiler_type):
    """(compile, link) flags for an ASan + UBSan build when FASTNN_SANITIZE is set, else ([], [])."""
    if os.environ.get("FASTNN_SANITIZE", "") in ("", "0"):
        return [], []
    if compiler_type == "msvc":
        raise RuntimeError("FASTNN_SANITIZE=1 needs GCC or Clang")
    # Every UBSan finding aborts instead of printing and going on; frame pointers give full stacks.
    # -O0 -g1 come after the flags above, so they win: unoptimised code keeps every memory access
    # for ASan to check, line tables put file:line in the reports, and the instrumented pybind11
    # bindings compile in half the time they take at -O1 -g (about 1 minute in all on 2 cores).
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                "-fno-omit-frame-pointer"]
    return sanitize + ["-O0", "-g1"], sanitize


class BuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        # pip builds in the source tree and setuptools only recompiles when a .cpp is newer than
        # the library, missing edits to headers, gemm_kernel.inc and flags: always rebuild.
        self.force = True

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if not _compiler_runs(self.compiler):
            raise SystemExit(no_compiler_message(f"{self.compiler.compiler_so[0]!r} not found"))
        cmd = getattr(self.compiler, "compiler_so", None) or [os.environ.get("CXX", "")]
        compile_omp, link_omp = openmp_flags(ctype, cmd)
        compile_san, link_san = sanitize_flags(ctype)
        for ext in self.extensions:
            ext.extra_compile_args += ((["/O2"] if ctype == "msvc" else UNIX_OPT) + compile_omp +
                                       compile_san)
            ext.extra_link_args += link_omp + link_san
        super().build_extensions()


def _compiler_runs(compiler):
    """Whether the C++ compiler setuptools chose can be started at all."""
    import shutil
    cmd = getattr(compiler, "compiler_so", None)
    if not cmd:
        return True  # MSVC: setuptools raises its own error naming the build tools
    return shutil.which(cmd[0]) is not None


# FASTNN_BUILD_JOBS=N compiles N sources at a time (default 1: a shared machine stays usable).
ParallelCompile("FASTNN_BUILD_JOBS", default=1).install()

ext = Pybind11Extension(
    "fastnn._core",
    sorted(glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
