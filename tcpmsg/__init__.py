"""The ``tcpmsg`` command: call, serve, demonstrate NestJS TCP microservices.

Standard library only; each binding is imported when a subcommand asks for it. Run it as
``tcpmsg ...`` or ``python -m tcpmsg ...``; :func:`tcpmsg.cli.main` is the entry point.
"""
