"""Shared test fixtures, and the device of the device-aware tests.

A test (or fixture) that takes an argument ``device`` is a device-aware test: it runs once per device
of ``$COMPRESSIBLE_TEST_DEVICE`` (comma-separated torch devices, e.g. ``cuda`` or ``cpu,cuda``; default
``cpu``) and carries the marker ``device``, so that ``COMPRESSIBLE_TEST_DEVICE=cuda pytest -m device``
runs exactly those tests on a GPU (what ``make gpu-check`` does). Asking for a CUDA device on a machine
without one stops the session with a usage error instead of skipping.
"""

import os

import pytest
import torch

DEVICE_ENV = "COMPRESSIBLE_TEST_DEVICE"


def devices_under_test() -> list[str]:
    """The devices of the device-aware tests: ``$COMPRESSIBLE_TEST_DEVICE`` split at commas, or ``["cpu"]``."""
    devices = [d.strip() for d in os.environ.get(DEVICE_ENV, "").split(",") if d.strip()]
    return devices or ["cpu"]


def pytest_configure(config):
    config.addinivalue_line("markers", f"device: a device-aware test (runs on each device of ${DEVICE_ENV}, default cpu)")
    for device in devices_under_test():
        try:
            kind = torch.device(device).type
        except RuntimeError as error:
            raise pytest.UsageError(f"{DEVICE_ENV}={os.environ.get(DEVICE_ENV)!r}: {error}") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise pytest.UsageError(f"{DEVICE_ENV} asks for {device!r} but torch.cuda.is_available() is False "
                                    f"(torch {torch.__version__})")


def pytest_generate_tests(metafunc):
    if "device" not in metafunc.fixturenames:
        return
    if any("device" in str(m.args[0] if m.args else "") for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test chooses its own devices
    metafunc.parametrize("device", devices_under_test(), scope="module")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture
def one_thread():
    """Tiny matrices: one intra-op thread avoids thread-team overhead on a shared machine.
    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.hookimpl(specname="pytest_configure")
def pytest_configure_worker_threads(config):
    """Under pytest-xdist, split the CPUs between the workers: ``cpus // workers`` torch threads each (at
    least 1), also for the processes a test starts (chapter kernels, process pools) through
    ``OMP_NUM_THREADS``. Two workers of two threads each on two cores make every parallel region wait
    for a descheduled thread (tiny models run thousands of them): a step then takes several times as
    long. An ``OMP_NUM_THREADS`` set by the caller is left alone."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers or "OMP_NUM_THREADS" in os.environ:
        return
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cpus // int(workers))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


@pytest.hookimpl(specname="pytest_collection_modifyitems", trylast=True)
def pytest_collection_costly_files_first(config, items):
    """Under pytest-xdist (``make test``: ``-n auto --dist loadfile``), hand out the costliest files first.

    ``loadfile`` gives each test file to one worker as a unit (module-scoped fixtures are built once, the
    chapters share one result store), in collection order with ``--no-loadscope-reorder``. The chapters
    (about 40% of the suite) go first so that they run beside everything else instead of after it; then
    files by their number of ``slow`` tests, so that the units left at the end, which decide when the last
    worker finishes, are short. Files of equal weight keep their order; outside xdist nothing moves."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    weight: dict[str, int] = {}
    for item in items:
        cost = 10 if item.get_closest_marker("chapter") else 1 if item.get_closest_marker("slow") else 0
        weight[item.nodeid.split("::")[0]] = weight.get(item.nodeid.split("::")[0], 0) + cost
    items.sort(key=lambda item: -weight[item.nodeid.split("::")[0]])
