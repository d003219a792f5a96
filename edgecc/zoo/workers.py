"""Where zoo jobs run: a local process pool (default) or a Ray cluster (`--ray`, `edgecc[ray]`).

Both backends take the same job functions and arguments and return the same JSON-ready dicts; the driver writes
every result file, so a run gives the same files whichever backend ran it. On Ray, the workers read and write
the results folder: with `--ray-address` of a remote cluster it must be on a filesystem every node shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from edgecc.errors import MissingDependencyError, UsageError

__all__ = ["Backend", "LocalBackend", "RayBackend", "JobCrashed", "make_backend"]


class JobCrashed(Exception):
    """A job's worker process died (signal, out of memory) or the backend lost it."""


class Backend(Protocol):
    """Submit job functions, wait for any to finish, collect results."""

    name: str
    workers: int

    def submit(self, func: Callable[..., dict[str, Any]], *args: Any) -> Any:
        """Start `func(*args)` on a worker; returns a handle."""

    def wait(self, handles: Sequence[Any]) -> list[Any]:
        """Block until at least one handle is done; return the done ones."""

    def result(self, handle: Any) -> dict[str, Any]:
        """The job's return value; JobCrashed when its worker died."""

    def close(self) -> None:
        """Release the workers."""


def threads_per_worker(workers: int) -> int | None:
    """Math-library threads for each of `workers` workers on this machine's cores (None: leave the libraries' default)."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers) if workers > 1 else None


class LocalBackend:
    """A pool of `workers` spawned processes that live for the whole run (imports are paid once per worker)."""

    name = "local"

    def __init__(self, workers: int, log_path: str | None) -> None:
        self.workers = workers
        self.log_path = log_path
        self._pool = self._start()

    def _start(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from edgecc.zoo.stages import init_worker

        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(self.log_path, threads_per_worker(self.workers)),
        )

    def submit(self, func: Callable[..., dict[str, Any]], *args: Any) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._pool.submit(func, *args)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()  # a crashed worker broke the pool: later jobs get a fresh one
            return self._pool.submit(func, *args)

    def wait(self, handles: Sequence[Any]) -> list[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(handles), return_when=FIRST_COMPLETED)
        return [h for h in handles if h in done]

    def result(self, handle: Any) -> dict[str, Any]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return handle.result()
        except BrokenProcessPool as exc:
            raise JobCrashed(f"a worker process died ({exc})") from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayBackend:
    """Ray tasks (one CPU each) on the cluster at `address`, or on a local Ray instance with `workers` CPUs."""

    name = "ray"

    def __init__(self, workers: int, address: str | None, log_path: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", feature="zoo run --ray", extra="ray") from None
        from edgecc.targets.qnn_htp import _native_stdout_to_stderr

        self._ray = ray
        self.workers = workers
        self.log_path = log_path
        self._remotes: dict[Callable[..., Any], Any] = {}
        self._owns = not ray.is_initialized()
        self._address = address
        if self._owns:
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": True,
                "logging_level": "ERROR",
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = workers
            with _native_stdout_to_stderr():  # Ray prints its start banner on stdout
                try:
                    ray.init(**kwargs)
                except ConnectionError as exc:
                    raise UsageError(
                        f"cannot reach the Ray cluster at '{address}': {exc}",
                        hint="check --ray-address, or drop it for a local Ray",
                    ) from None
        if address:
            self.workers = max(1, int(ray.cluster_resources().get("CPU", workers)))

    def submit(self, func: Callable[..., dict[str, Any]], *args: Any) -> Any:
        remote = self._remotes.get(func)
        if remote is None:
            log_path = self.log_path
            threads = threads_per_worker(self.workers) if not self._address else None

            def task(*inner: Any) -> dict[str, Any]:
                from edgecc.zoo.stages import init_worker

                init_worker(log_path, threads)
                return func(*inner)

            remote = self._remotes[func] = self._ray.remote(num_cpus=1, max_retries=0)(task)
        return remote.remote(*args)

    def wait(self, handles: Sequence[Any]) -> list[Any]:
        ready, _ = self._ray.wait(list(handles), num_returns=1)
        more, _ = self._ray.wait(list(handles), num_returns=len(handles), timeout=0)
        return list(dict.fromkeys([*ready, *more]))

    def result(self, handle: Any) -> dict[str, Any]:
        try:
            return self._ray.get(handle)
        except (self._ray.exceptions.WorkerCrashedError, self._ray.exceptions.TaskCancelledError) as exc:
            raise JobCrashed(f"the Ray worker died ({type(exc).__name__})") from None
        except self._ray.exceptions.RayTaskError as exc:
            raise JobCrashed(f"the Ray task failed: {' '.join(str(exc.cause).split())[:300]}") from None

    def close(self) -> None:
        if self._owns:
            self._ray.shutdown()


def make_backend(*, workers: int, ray: bool, ray_address: str | None, log_path: str | None) -> Backend:
    """The backend the options ask for."""
    if ray_address and not ray:
        raise UsageError("--ray-address needs --ray")
    if ray:
        return RayBackend(workers, ray_address, log_path)
    return LocalBackend(workers, log_path)
