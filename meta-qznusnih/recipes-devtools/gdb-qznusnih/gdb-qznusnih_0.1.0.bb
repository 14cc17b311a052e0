# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER - no public home yet
SUMMARY = "Log every read and write of one byte of a Linux process, with backtraces"
DESCRIPTION = "A gdb extension (qzn-watch) and a launcher (qznusnih watch ADDR PID) that \
               watch one byte or an aligned word with hardware watchpoints or perf breakpoint \
               events, and log each access with its exact kind, value and backtrace."
SECTION = "devel"
CVE_PRODUCT = "gdb-qznusnih"
# The project has not chosen a licence yet: there is no licence text to checksum.
LICENSE = "CLOSED"

# The source is the checkout this layer sits in (files/gdb_qznusnih links to the package);
# a distribution layer would fetch a release with git:// and a SRCREV instead.
SRC_URI = "file://gdb_qznusnih/"

# scarthgap unpacks into WORKDIR and has no UNPACKDIR yet.
UNPACKDIR ??= "${WORKDIR}"
S = "${UNPACKDIR}"

inherit python3-dir

QZNUSNIH_GDBINIT = "${datadir}/gdb-qznusnih/gdbinit"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

# Plain copies of the pure-Python package: nothing to build, and the same tree on the
# board (target), in the SDK (nativesdk) and on the build host (native).
do_install() {
    install -d ${D}${PYTHON_SITEPACKAGES_DIR}
    cp -R --no-preserve=ownership ${S}/gdb_qznusnih ${D}${PYTHON_SITEPACKAGES_DIR}/
    find ${D}${PYTHON_SITEPACKAGES_DIR}/gdb_qznusnih -name __pycache__ -prune -exec rm -rf {} +

    install -d ${D}${bindir}
    printf '%s\n' '#!/usr/bin/env python3' \
        'from gdb_qznusnih.launcher.cli import main' \
        'raise SystemExit(main())' > ${D}${bindir}/qznusnih
    chmod 0755 ${D}${bindir}/qznusnih

    # The line for ~/.gdbinit (or gdb -x FILE): the loader registers the qzn-* commands.
    install -d ${D}${datadir}/gdb-qznusnih
    printf 'source %s\n' ${PYTHON_SITEPACKAGES_DIR}/gdb_qznusnih/loader.py > ${D}${QZNUSNIH_GDBINIT}
    chmod 0644 ${D}${QZNUSNIH_GDBINIT}
}

FILES:${PN} += "${PYTHON_SITEPACKAGES_DIR}/gdb_qznusnih ${QZNUSNIH_GDBINIT}"

RDEPENDS:${PN} = "python3-core python3-ctypes python3-json python3-pygments"
RDEPENDS:${PN}:append:class-target = " gdb"

BBCLASSEXTEND = "native nativesdk"
