"""pytest glue for the ferry end-to-end tests: testbeds that stop what they
started (also when a test fails), fail a test whose ferry crashed or printed
a sanitizer report, and attach ferry's and Prosody's log tails to failures."""

import os

import pytest

import harness
import pg_helpers


def pytest_addoption(parser):
    parser.addoption("--store", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the store every ferry uses: its SQLite file (default) or a database "
                          "of one throwaway PostgreSQL (pg_helpers.py)")


def pytest_configure(config):
    if config.getoption("--store") == "postgresql":
        pg_helpers.use_for_ferries(harness)


@pytest.fixture(scope="session")
def ferry_bin():
    path = harness.ferry_binary()
    if not os.path.exists(path):
        pytest.fail("ferry binary not found at %s: build it (cmake -S . -B build && cmake --build build -j2) "
                    "or set FERRY_BIN" % path, pytrace=False)
    return path


def _finish(tb):
    problems = tb.finish()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def testbed(tmp_path_factory, request):
    """Per test: Prosodies, ferries, receivers, clients, all stopped at the end."""
    tb = harness.Testbed(str(tmp_path_factory.mktemp(request.node.name[:40])))
    yield tb
    _finish(tb)


@pytest.fixture(scope="module")
def module_testbed(tmp_path_factory, request):
    """Per module: the shared Prosody, ferry, receiver and clients."""
    tb = harness.Testbed(str(tmp_path_factory.mktemp(request.module.__name__)))
    yield tb
    _finish(tb)


@pytest.fixture(autouse=True)
def _ferry_must_survive():
    """After each test: every ferry that should still be running is, and no
    shared ferry printed a sanitizer report during the test (ferries started
    by the test itself are checked when their testbed finishes)."""
    before = {id(f): f.stderr_offset() for f in harness.LIVE if isinstance(f, harness.Ferry)}
    yield
    bad = []
    for obj in list(harness.LIVE):
        if not isinstance(obj, harness.Ferry) or obj.proc is None:
            continue
        if not obj.expect_exit and obj.proc.poll() is not None and not obj.stopped_by_harness:
            bad.append("ferry died during this test:\n" + obj.report())
        elif id(obj) in before and harness.sanitizer_reports(obj.stderr(before[id(obj)])):
            bad.append("sanitizer report in ferry's stderr during this test:\n" + obj.report())
    if bad:
        pytest.fail("\n\n".join(bad), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for obj in list(harness.LIVE):
            try:
                title = "ferry %s" % obj.name if isinstance(obj, harness.Ferry) else type(obj).__name__.lower()
                rep.sections.append((title + " (log tail)", obj.report()))
            except Exception as e:  # noqa: a report must not break reporting
                rep.sections.append(("log tail", "could not read: %r" % e))
