"""Install gdb-qznusnih: the gdb_qznusnih package (with its gdb loader) and `qznusnih`."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "gdb_qznusnih" / "__init__.py").read_text(), re.M
).group(1)
README = HERE / "README.md"

setup(
    name="gdb-qznusnih",
    version=VERSION,
    description="Log every read and write of one byte of a Linux process, with backtraces (gdb)",
    long_description=README.read_text() if README.exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["gdb_qznusnih", "gdb_qznusnih.*"]),
    python_requires=">=3.10",
    install_requires=["pygments"],
    # oelint-adv: the bitbake-recipe linter, for meta-qznusnih (CI, tests/cli/test_yocto_layer.py).
    extras_require={"dev": ["pytest", "hypothesis", "ruff", "oelint-adv"]},
    entry_points={"console_scripts": ["qznusnih = gdb_qznusnih.launcher.cli:main"]},
    classifiers=[
        "Environment :: Console",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Topic :: Software Development :: Debuggers",
    ],
)
