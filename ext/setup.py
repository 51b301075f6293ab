"""Compiles crossbook_ext.fanout; picows.pxd is found on sys.path (picows 2.3.1 ships it)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("crossbook_ext.fanout", ["crossbook_ext/fanout.pyx"], extra_compile_args=["-O2"])],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )
)
