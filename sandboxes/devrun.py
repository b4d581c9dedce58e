"""``make run``: the embedded database when ``DATABASE_URL`` is unset, migrations, demo data, then the server.

Serves http://127.0.0.1:5000 with gunicorn (OpenAPI docs at /docs, the document at /openapi.json). Dev tooling: it
may import anything; the sandboxes it starts go through ``sandboxes.launcher``.
"""

from __future__ import annotations

import os
import sys

from server.config import Config


def main() -> None:
    config = Config.from_env()
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        from sandboxes import embedded_db

        env["DATABASE_URL"] = embedded_db.ensure_running()
        config = config.with_overrides(database_url=env["DATABASE_URL"])
        print(f"embedded PostgreSQL: {env['DATABASE_URL']}")
    from models.migrate import upgrade

    upgrade(config.database_url)
    print("database migrated to head")
    from server import create_app
    from server.cli import load_demo_and_describe

    app = create_app(config)
    from models.demo import DemoRefused

    with app.app_context():
        try:
            for line in load_demo_and_describe():
                print(line)
        except DemoRefused as exc:
            print(f"no demo data: {exc}")
    # the payment gateway sandbox, as its own process with its own key (docs/gateway.md)
    from urllib.parse import urlsplit

    from sandboxes import launcher

    gateway = urlsplit(config.gateway_url)
    if gateway.hostname in ("127.0.0.1", "localhost") and gateway.port:
        var = config.var_dir
        launcher.start_gateway(
            gateway.port, config.gateway_key, var / "gateway-state.json", log_path=var / "gateway.log"
        )
        print(f"payment gateway sandbox on {config.gateway_url} (log: {var / 'gateway.log'})")
    # the vehicle registry and e-approval sandboxes, likewise (docs/registry.md, docs/approval.md)
    var = config.var_dir
    reg = urlsplit(config.registry_url)
    if reg.hostname in ("127.0.0.1", "localhost") and reg.port:
        launcher.start_registry(reg.port, config.registry_key, log_path=var / "registry.log")
        print(f"vehicle registry sandbox on {config.registry_url} (demo plates: {config.registry_url}/demo)")
    apv = urlsplit(config.approval_url)
    if apv.hostname in ("127.0.0.1", "localhost") and apv.port:
        launcher.start_approval(
            apv.port,
            config.approval_secret,
            var / "approval-state.json",
            auto_approve_after=config.approval_auto_approve_seconds or None,
            log_path=var / "approval.log",
        )
        auto = config.approval_auto_approve_seconds
        print(
            f"e-approval sandbox on {config.approval_url} (approver's inbox: {config.approval_url}/approvals"
            + (f"; auto-approves after {auto} s)" if auto else ")")
        )
    # the background worker (server/worker.py): suspense sweep, feed compaction …; in this process group, so
    # Ctrl-C stops it with the server
    import subprocess

    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    worker_log = (config.var_dir / "worker.log").open("ab")
    subprocess.Popen([flask, "--app", "wsgi", "worker"], env=env, stdout=worker_log, stderr=subprocess.STDOUT)
    print(f"background worker started (log: {config.var_dir / 'worker.log'})")
    bind = env.get("JINGSU_BIND", "127.0.0.1:5000")
    print(
        f"\nJingsu on http://{bind}  (API docs: http://{bind}/docs, OpenAPI: http://{bind}/openapi.json)\n", flush=True
    )
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    os.execve(gunicorn, [gunicorn, "-w", "2", "-b", bind, "--no-control-socket", "wsgi:app"], env)


if __name__ == "__main__":
    main()
