"""The ``polydl`` command line (installed as the ``polydl_cli`` package)."""
