"""The ``shoal`` program: global options, errors, extension modules, ca and control serve."""

from __future__ import annotations

import json
import stat
import types
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from control.cli import program as cli_main
from control.cli.options import command, group
from control.cli.shell import Settings, http_client, outcome_of
from control.client.http import HTTPClient
from control.errors import InvalidRequest

from .harness import CLI, NODE_1


@pytest.mark.parametrize(
    "argv", [["--json", "node", "list"], ["node", "list", "--json"]]
)
def test_global_options_anywhere(argv: list[str]) -> None:
    """Global options work before or after the command."""
    cli = CLI()
    cli.register()
    assert json.loads(cli(*argv).out)[0]["uuid"] == str(NODE_1)


def test_settings_from_env_and_options() -> None:
    """Options win over the environment, which wins over the default URL."""
    cli = CLI(env={"SHOAL_URL": "https://env:1", "SHOAL_CERT": "c.crt"})
    cli("node", "list")
    cli("node", "list", "--url", "https://opt:2", "--key", "k.key")
    assert cli.settings == [
        Settings("https://env:1", None, "c.crt", None),
        Settings("https://opt:2", None, "c.crt", "k.key"),
    ]
    assert CLI()("node", "list").code == 0


def test_http_client_tls_settings(tmp_path: Path) -> None:
    """HTTPS needs all three TLS files; plain HTTP needs none."""
    with pytest.raises(InvalidRequest, match="all three"):
        http_client(Settings("http://x", ca_cert="ca.crt"), None)
    with pytest.raises(InvalidRequest, match="is HTTPS"):
        http_client(Settings("https://x"), None)
    assert isinstance(http_client(Settings("http://x"), object()), HTTPClient)


def test_no_command() -> None:
    """Without a command, usage is printed and the status is 2."""
    result = CLI()()
    assert result.code == 2 and result.err.endswith("error: choose a command\n")
    assert CLI()("bogus").code == 2


def test_unexpected_error_has_no_traceback() -> None:
    """A bug shows one line, not a traceback."""
    cli = CLI()

    def boom() -> Any:
        raise RuntimeError("boom")

    cli.client.list_nodes = boom  # type: ignore[method-assign]
    result = cli("node", "list")
    assert (result.code, result.err) == (1, "error: unexpected RuntimeError: boom\n")


def test_reactor_stopped_before_the_work_is_an_interrupt() -> None:
    """Ctrl-C stopping the reactor mid-command reads as an interrupt, not an IndexError."""
    with pytest.raises(KeyboardInterrupt):
        outcome_of([])
    assert outcome_of([7]) == 7


def _extension() -> types.ModuleType:
    module = types.ModuleType("agent.cli")

    def hello(ctx: Any) -> int:
        ctx.print(f"hello {ctx.args.who}")
        return 3

    def register(subparsers: Any) -> None:
        commands = group(subparsers, "agent", "the agent")
        command(commands, "run", hello, "say hello").add_argument("who")

    module.register = register  # type: ignore[attr-defined]
    return module


def test_extension_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed optional module adds its commands; a missing one is skipped."""
    assert [m.__name__ for m in cli_main.command_modules(["no_such_pkg.cli"])] == list(
        cli_main.COMMAND_MODULES
    )
    assert cli_main.import_command_module("no_such_pkg.cli", optional=True) is None
    original = cli_main.import_command_module
    monkeypatch.setattr(
        cli_main,
        "import_command_module",
        lambda name, optional: _extension() if name == "agent.cli" else original(name, optional),
    )
    result = CLI()("agent", "run", "you")
    assert (result.code, result.out) == (3, "hello you\n")


def test_broken_extension_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module that exists but fails to import is an error, not silently skipped."""

    real = cli_main.importlib.import_module

    def broken(name: str) -> Any:
        if name != "agent.cli":
            return real(name)
        raise ModuleNotFoundError("No module named 'missing_dependency'", name="missing_dependency")

    monkeypatch.setattr(cli_main.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError):
        cli_main.command_modules(["agent.cli"])


@pytest.mark.parametrize(
    ("argv", "group"),
    [
        (["dataset", "list"], "dataset"),
        (["--json", "--url", "http://x", "node", "list"], "node"),
        (["--url=http://x", "agent", "run"], "agent"),
        (["--ur", "http://x", "lease", "list"], "lease"),
        (["--json", "ca", "init"], "ca"),
        (["--url", "dataset"], None),
        (["--help"], None),
        (["bogus", "dataset"], None),
        ([], None),
    ],
)
def test_chosen_group(argv: list[str], group: str | None) -> None:
    """The group is the first word that is neither an option nor a global option's value."""
    chosen = cli_main.chosen_group(argv)
    assert (chosen.name if chosen else None) == group


def test_help_lists_every_group_with_its_registered_help() -> None:
    """``shoal --help`` lists every group, with the help line its module registers."""
    text = cli_main.build_parser(cli_main.lazy_modules(["--help"])).format_help()
    for g in cli_main.COMMAND_GROUPS:
        assert g.name in text and g.help in text
    parser = cli_main.build_parser(cli_main.command_modules())
    registered = {
        choice.dest: choice.help
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        for choice in action._choices_actions  # type: ignore[attr-defined]
    }
    assert registered == {g.name: g.help for g in cli_main.COMMAND_GROUPS}


def test_ca_commands(tmp_path: Path) -> None:
    """``ca init`` and ``ca issue`` write Flocker-named files; the control cert gets NAME."""
    cli = CLI()
    assert cli("ca", "init", "--dir", str(tmp_path), "--name", "prod").code == 0
    control = cli("ca", "issue", "control", "ctl.example", "--ip", "10.0.0.5",
                  "--dir", str(tmp_path), "--json")
    assert json.loads(control.out)["certificate"] == str(tmp_path / "control-service.crt")
    alice = cli("ca", "issue", "user", "alice", "--role", "operator", "--dir", str(tmp_path))
    assert alice.code == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "control-service.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["control-service", "ctl.example"]
    assert stat.S_IMODE((tmp_path / "user-alice.key").stat().st_mode) == 0o600


def test_ca_errors(tmp_path: Path) -> None:
    """A node certificate needs a name; issuing without a CA says what to run."""
    cli = CLI()
    assert cli("ca", "issue", "node", "--dir", str(tmp_path)).code == 2
    missing = cli("ca", "issue", "node", "n1", "--dir", str(tmp_path))
    assert missing.code == 1 and "shoal ca init" in missing.err
    roleless = cli("ca", "issue", "user", "bob", "--dir", str(tmp_path))
    assert roleless.code == 2 and "--role admin|operator|viewer" in roleless.err
    assert cli("ca", "issue", "node", "n1", "--role", "admin", "--dir", str(tmp_path)).code == 2
    assert cli("ca", "issue", "user", "bob", "--role", "root", "--dir", str(tmp_path)).code == 2


def test_control_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """``control serve`` hands its options to the service."""
    calls: list[dict[str, Any]] = []
    import control.service

    monkeypatch.setattr(control.service, "run_control_service", lambda **kw: calls.append(kw))
    result = CLI()("control", "serve", "--port", "9999", "--tls-dir", "/etc/shoal",
                   "--node-timeout", "5", "--header-timeout", "3", "--max-connections", "500",
                   "--events-per-dataset", "20", "--events-max-age", "60",
                   "--failover-grace", "3", "--metrics-address", "127.0.0.1:9523")
    assert result.code == 0
    assert calls == [
        {"port": 9999, "host": "127.0.0.1", "database": None, "tls_dir": "/etc/shoal",
         "node_timeout": 5.0, "allow_insecure": False, "events_per_dataset": 20,
         "events_max_age": 60.0, "header_timeout": 3.0,
         "body_timeout": 30.0, "idle_timeout": 60.0, "max_connections": 500,
         "max_connections_per_address": 128, "database_threads": 8,
         "failover_grace": 3.0, "metrics_address": "127.0.0.1:9523", "watch_floor": None}
    ]
    refused = CLI()("control", "serve", "--events-per-dataset", "0")
    assert refused.code == 2 and "at least 1" in refused.err


def test_control_serve_refuses_bad_limits() -> None:
    """Connection limits must be positive whole numbers, deadlines positive seconds."""
    for flag, value in [("--max-connections", "0"), ("--max-connections-per-address", "-1"),
                        ("--header-timeout", "0"), ("--body-timeout", "soon")]:
        result = CLI()("control", "serve", flag, value)
        assert result.code == 2 and flag in result.err


def test_control_serve_refuses_an_unsupported_database_url() -> None:
    """An unsupported database URL is refused in a sentence naming the forms that work."""
    for url in ["bogus://somewhere/db", "mysql://shoal:secret@db/shoal", "not a url"]:
        result = CLI()("control", "serve", "--database", url, "--allow-insecure")
        assert result.code == 1, result.err
        assert "not one the store supports" in result.err and "sqlite:///PATH" in result.err
        assert "unexpected" not in result.err and "secret" not in result.err
