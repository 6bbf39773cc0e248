"""`safewatch setup`: a plain Debian host with the distribution's PostgreSQL and Mosquitto, made ready in one command.

``secret_file`` keeps the generated secrets (made once, kept on every re-run), ``units`` renders what is
written (systemd units, environment files, the Mosquitto drop-in; pure text), ``host`` writes it and runs the
database and broker steps. docs/deploying.md, "A plain Debian host", is the operator's side of it.
"""
