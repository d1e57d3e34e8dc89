"""process.args / cwd / terminal / env, the stop signal and the log path."""

from __future__ import annotations

import signal

import pytest

from cri.api import api_pb2 as pb
from cri.specgen import SpecInvalidError
from cri.specgen.process import (
    DEFAULT_PATH_ENV,
    log_path_of,
    merge_args,
    merge_env,
    parse_signal,
    stop_signal_of,
    with_env,
    with_process_args,
    with_terminal,
    with_working_dir,
)
from tests.unit.test_specgen_support import container_config, empty_spec, make_inputs

IMAGE = {"Entrypoint": ["/entry", "-x"], "Cmd": ["serve", "--port=80"]}


@pytest.mark.parametrize(
    ("command", "args", "image", "expected"),
    [
        # Kubernetes "Notes" table (Define a Command and Arguments for a Container).
        ([], [], IMAGE, ["/entry", "-x", "serve", "--port=80"]),
        (["/bin/app"], [], IMAGE, ["/bin/app"]),
        ([], ["run", "fast"], IMAGE, ["/entry", "-x", "run", "fast"]),
        (["/bin/app"], ["run"], IMAGE, ["/bin/app", "run"]),
        ([], [], {"Cmd": ["sh"]}, ["sh"]),
        ([], ["echo", "hi"], {"Cmd": ["sh"]}, ["echo", "hi"]),
        # ENTRYPOINT [] in a Dockerfile is stored as [""]: no entrypoint.
        ([], [], {"Entrypoint": [""], "Cmd": ["sh"]}, ["sh"]),
        ([], [], {"Entrypoint": None, "Cmd": None}, []),
    ],
)
def test_merge_args_follows_kubernetes_rules(
    command: list[str], args: list[str], image: dict[str, object], expected: list[str]
) -> None:
    assert merge_args(command, args, image) == expected


def test_with_process_args_sets_argv() -> None:
    config = container_config()
    config.args.extend(["echo", "hello"])
    spec = with_process_args(empty_spec(), make_inputs(config))
    assert spec["process"]["args"] == ["echo", "hello"]


def test_no_command_anywhere_is_invalid_argument_naming_the_container() -> None:
    with pytest.raises(SpecInvalidError, match="no command specified for container 'app'"):
        with_process_args(empty_spec(), make_inputs(image_config={}))


def test_image_config_list_of_wrong_type_is_refused() -> None:
    with pytest.raises(SpecInvalidError, match="image config Cmd must be a list of strings"):
        with_process_args(empty_spec(), make_inputs(image_config={"Cmd": "sh -c true"}))


@pytest.mark.parametrize(
    ("configured", "image_dir", "expected"),
    [
        ("", "", "/"),
        ("", "/srv/app", "/srv/app"),
        ("/work", "/srv/app", "/work"),
        ("/work/./a/", "", "/work/a"),
        ("", "relative/dir", "/relative/dir"),
    ],
)
def test_working_dir(configured: str, image_dir: str, expected: str) -> None:
    config = container_config()
    config.working_dir = configured
    inputs = make_inputs(config, image_config={"Cmd": ["sh"], "WorkingDir": image_dir})
    assert with_working_dir(empty_spec(), inputs)["process"]["cwd"] == expected


def test_relative_config_working_dir_is_refused() -> None:
    config = container_config()
    config.working_dir = "work"
    with pytest.raises(SpecInvalidError, match="working_dir 'work' is not an absolute path"):
        with_working_dir(empty_spec(), make_inputs(config))


@pytest.mark.parametrize("tty", [True, False])
def test_terminal_follows_tty(tty: bool) -> None:
    config = container_config()
    config.tty = tty
    config.stdin = True
    config.stdin_once = True
    assert with_terminal(empty_spec(), make_inputs(config))["process"]["terminal"] is tty


def test_merge_env_later_layers_win_in_place() -> None:
    merged = merge_env([["A=1", "B=2"], ["B=3", "C=4"], ["A=5", "D"]])
    assert merged == ["A=5", "B=3", "C=4", "D"]


def test_env_order_defaults_image_config() -> None:
    config = container_config()
    config.envs.extend(
        [pb.KeyValue(key="B", value=b"from-config"), pb.KeyValue(key="C", value=b"c=d")]
    )
    image = {"Cmd": ["sh"], "Env": ["PATH=/image/bin", "B=from-image", "HOSTNAME=image"]}
    spec = with_env(empty_spec(), make_inputs(config, image_config=image))
    assert spec["process"]["env"] == [
        "PATH=/image/bin",
        "HOSTNAME=image",
        "B=from-config",
        "C=c=d",
    ]


def test_env_defaults_without_image_env() -> None:
    config = container_config()
    config.tty = True
    spec = with_env(empty_spec(), make_inputs(config, image_config={"Cmd": ["sh"]}))
    assert spec["process"]["env"] == [DEFAULT_PATH_ENV, "TERM=xterm", "HOSTNAME=web-0"]


def test_hostname_env_falls_back_to_the_node_for_pods_without_one() -> None:
    from tests.unit.test_specgen_support import sandbox_config

    sandbox = sandbox_config(network=pb.NODE, hostname="")
    spec = with_env(empty_spec(), make_inputs(sandbox=sandbox, image_config={"Cmd": ["sh"]}))
    assert "HOSTNAME=node-1" in spec["process"]["env"]


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("", b"x", "name '' is invalid"),
        ("A=B", b"x", "name 'A=B' is invalid"),
        ("A", b"\xff\xfe", "not UTF-8"),
        ("A", b"a\x00b", "NUL byte"),
    ],
)
def test_bad_env_is_invalid_argument(key: str, value: bytes, fragment: str) -> None:
    config = container_config()
    config.envs.append(pb.KeyValue(key=key, value=value))
    with pytest.raises(SpecInvalidError, match=fragment):
        with_env(empty_spec(), make_inputs(config))


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("SIGTERM", signal.SIGTERM),
        ("TERM", signal.SIGTERM),
        ("sigquit", signal.SIGQUIT),
        ("9", 9),
        ("SIGRTMIN", signal.SIGRTMIN),
        ("SIGRTMIN+3", signal.SIGRTMIN + 3),
        ("SIGRTMAX-1", signal.SIGRTMAX - 1),
    ],
)
def test_parse_signal(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "999", "SIGRTMIN+99", ""])
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a signal"):
        parse_signal(text)


def test_stop_signal_precedence() -> None:
    config = container_config()
    image = {"Cmd": ["sh"], "StopSignal": "SIGQUIT"}
    assert stop_signal_of(make_inputs(config, image_config={"Cmd": ["sh"]})) == signal.SIGTERM
    assert stop_signal_of(make_inputs(config, image_config=image)) == signal.SIGQUIT
    config.stop_signal = pb.SIGUSR1
    assert stop_signal_of(make_inputs(config, image_config=image)) == signal.SIGUSR1
    config.stop_signal = pb.SIGRTMINPLUS1
    assert stop_signal_of(make_inputs(config, image_config=image)) == signal.SIGRTMIN + 1


def test_bad_image_stop_signal_is_named() -> None:
    inputs = make_inputs(image_config={"Cmd": ["sh"], "StopSignal": "SIGWHAT"})
    with pytest.raises(SpecInvalidError, match="image StopSignal 'SIGWHAT' is not a signal"):
        stop_signal_of(inputs)


def test_log_path_joins_directory_and_path() -> None:
    assert log_path_of(make_inputs()) == "/var/log/pods/default_web-0_pod-uid-1/app/0.log"


def test_log_path_is_empty_without_either_part() -> None:
    config = container_config()
    config.log_path = ""
    assert log_path_of(make_inputs(config)) == ""
    from tests.unit.test_specgen_support import sandbox_config

    sandbox = sandbox_config()
    sandbox.log_directory = ""
    assert log_path_of(make_inputs(sandbox=sandbox)) == ""


def test_log_path_may_not_leave_the_directory() -> None:
    config = container_config()
    config.log_path = "../../etc/cron.d/x"
    with pytest.raises(SpecInvalidError, match="leaves the log directory"):
        log_path_of(make_inputs(config))
    config.log_path = "/abs/0.log"
    assert log_path_of(make_inputs(config)).endswith("pod-uid-1/abs/0.log")


def test_every_cri_signal_has_a_number() -> None:
    from cri.specgen.process import cri_signal_number

    numbers = {
        name: cri_signal_number(value)
        for name, value in pb.Signal.items()
        if value != pb.RUNTIME_DEFAULT
    }
    assert all(isinstance(n, int) and n > 0 for n in numbers.values()), numbers
    assert numbers["SIGCLD"] == signal.SIGCHLD
    assert numbers["SIGRTMAXMINUS1"] == signal.SIGRTMAX - 1
    assert numbers["SIGRTMAX"] == signal.SIGRTMAX
