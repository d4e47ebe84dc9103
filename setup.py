from setuptools import find_packages, setup

requires = [
    # pyramid 2.1 and cornice 6.1 import pkg_resources, which setuptools 81+ dropped.
    "setuptools<81",
    "pyramid==2.1",
    "pyramid_tm==2.6",
    "pyramid_retry==2.1.1",
    "transaction==5.1",
    "zope.interface>=6",
    "zope.sqlalchemy==4.1",
    "SQLAlchemy==2.1.9",
    "psycopg[binary]==3.3.9",
    "alembic==1.20.1",
    "cornice==6.1.0",
    "colander==2.0",
    "plaster_pastedeploy",
    "huey==3.5.4",
    "limits==5.8.0",
    "redis==8.1.0",
    "waitress==3.0.2",
    "gunicorn==27.0.1",
    "stripe==16.1.0",
    # ISO 4217: how many decimals each currency has (JPY none, USD two, KWD three).
    "iso4217==1.16.20260101",
    # Swagger UI's assets for /api/docs, served from the package (no CDN).
    "swagger-ui-bundle==1.1.0",
    # Printable tickets: the PDF's layout (fpdf2, with Pillow for the QR code's image), and the
    # QR code of each ticket's code (zxing-cpp's compiled encoder; its wheel also decodes them in
    # the tests). Both cost the email worker little: bench/ticket_pdf_cost.py.
    "fpdf2==2.8.9",
    "Pillow==13.0.0",
    "zxing-cpp==3.1.1",
    # Webhooks: signed as the Standard Webhooks specification says, by its own library; sent
    # with urllib3 to the very address the SSRF guard checked.
    "standardwebhooks==1.1.0",
    "urllib3>=2,<3",
]

tests_require = [
    "WebTest==3.0.7",
    "pytest==9.2.0",
    "aiosmtpd==1.4.6",
    "hypothesis==6.170.17",
    "openapi-spec-validator==0.9.0",
    "schemathesis==4.32.5",
    "ruff",
    # The tickets' PDF opened in the tests: its text, and its pages rendered (a wheel with its
    # own PDFium: no system package needed) for zxing-cpp to read their QR codes.
    "pypdf==7.1.0",
    "pypdfium2==5.15.2",
]

setup(
    name="ticketing",
    version="0.1.0",
    description="Event ticketing REST API (Pyramid)",
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Framework :: Pyramid",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Application",
    ],
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests"]),
    include_package_data=True,
    package_data={
        "ticketing": [
            "alembic/*.mako",
            "alembic/*.py",
            "alembic/versions/*.py",
            "templates/email/*.txt",
            "templates/email/*.html",
        ]
    },
    zip_safe=False,
    install_requires=requires,
    extras_require={"testing": tests_require, "bench": ["pyinstrument", "py-spy"]},
    entry_points={
        "paste.app_factory": ["main = ticketing:main"],
        "paste.server_runner": ["waitress = ticketing.server:serve"],
        "console_scripts": [
            "initialize_ticketing_db = ticketing.scripts.initialize_db:main",
            "ticketing_worker = ticketing.scripts.worker:main",
            "ticketing_keys = ticketing.scripts.keys:main",
        ],
    },
)
