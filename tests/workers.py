"""Real ``ticketing_worker`` processes for the end-to-end tests: started on an ini made of the
test's settings, stopped (terminated, killed if stuck) when the test ends."""

import contextlib
import os
import pathlib
import subprocess

REPO = pathlib.Path(__file__).resolve().parent.parent
WORKER = REPO / ".venv" / "bin" / "ticketing_worker"


@contextlib.contextmanager
def worker_processes(settings, tmp_path):
    """Yield ``start(queue)``, which starts ``ticketing_worker INI --queue QUEUE`` on an ini of
    ``settings`` (its log in ``tmp_path``) and returns the process; every one started is
    stopped on the way out."""
    ini = tmp_path / "worker.ini"
    ini.write_text(
        "[app:main]\nuse = egg:ticketing\n"
        + "".join(f"{key} = {value}\n" for key, value in settings.items())
    )
    environ = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    started = []

    def start(queue):
        log = open(tmp_path / f"worker-{len(started)}-{queue}.log", "wb")
        process = subprocess.Popen(
            [str(WORKER), str(ini), "--queue", queue],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ,
        )
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
