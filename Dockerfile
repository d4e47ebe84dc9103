# The production image: `gunicorn --paste production.ini` (settings from the environment; see
# README "Containers"). docker-compose.yml runs it as the API, the job worker and the migration.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first, so that a change to an ini file does not reinstall it. pyramid and cornice
# import pkg_resources: setup.py keeps setuptools below 81 at run time.
COPY setup.py ./
COPY ticketing ./ticketing
RUN pip install "setuptools<81" wheel \
    && pip install . \
    && useradd --create-home --uid 10001 ticketing

# gunicorn --paste reads gunicorn.conf.py from the working directory.
COPY production.ini gunicorn.conf.py ./

USER ticketing
EXPOSE 6543
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6543/api/health', timeout=4)"]

CMD ["gunicorn", "--paste", "production.ini"]
