"""`hitl-streams serve` enables the Slack and e-mail channels from options or environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from hitl_streams.channels.configure import ChannelOptions, configured_channels
from hitl_streams.channels.email import EmailChannel
from hitl_streams.channels.slack import SlackChannel
from hitl_streams.errors import ValidationError
from hitl_streams.server.channels import InboxChannel
from tests.server.support import API, APPROVE_DENY, free_port

from .test_email import Mailbox

CLI = [str(Path(sys.executable).parent / "hitl-streams")]


def test_the_options_make_the_channels_and_the_inbox_stays_the_default() -> None:
    assert configured_channels(ChannelOptions()) == []
    adapters = configured_channels(
        ChannelOptions(
            slack_bot_token="xoxb-1",
            slack_signing_secret="s",
            slack_channel="C9",
            smtp_url="smtp://u:p%40ss@mail.example.com:587?starttls=1",
            mail_from="hitl@example.com",
            public_url="https://hitl.example.com",
            inbox=True,
        )
    )
    inbox, slack, mail = adapters
    assert isinstance(inbox, InboxChannel) and isinstance(slack, SlackChannel) and isinstance(mail, EmailChannel)
    assert slack.default_channel == "C9" and slack.channel_key == "slack"
    assert (mail.smtp.host, mail.smtp.port, mail.smtp.username, mail.smtp.password) == (
        "mail.example.com",
        587,
        "u",
        "p@ss",
    )
    assert mail.smtp.start_tls and not mail.smtp.use_tls
    assert "p@ss" not in repr(mail.smtp)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ChannelOptions(slack_bot_token="xoxb-1"), "Slack needs both --slack-bot-token and --slack-signing-secret"),
        (ChannelOptions(smtp_url="smtp://h"), "E-mail needs both --smtp-url and --mail-from"),
        (
            ChannelOptions(smtp_url="smtp://h", mail_from="a@b.c", inbox=True),
            "E-mail links lead to the web inbox: it needs --inbox and --public-url",
        ),
        (ChannelOptions(smtp_url="http://h", mail_from="a@b.c", public_url="https://x", inbox=True), "An SMTP URL"),
    ],
)
def test_a_half_configured_channel_says_what_is_missing(options: ChannelOptions, message: str) -> None:
    env = os.environ.pop("HITL_PUBLIC_URL", None)
    try:
        with pytest.raises(ValidationError, match=message):
            configured_channels(options)
    finally:
        if env is not None:
            os.environ["HITL_PUBLIC_URL"] = env


def _env(**extra: str) -> dict[str, str]:
    drop = ("HITL_SECRET", "REDIS_URL", "HITL_PUBLIC_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "HITL_SMTP_URL")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def test_serve_refuses_half_a_slack_configuration(tmp_path: Path) -> None:
    finished = subprocess.run(
        [*CLI, "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        env=_env(SLACK_BOT_TOKEN="xoxb-1"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    assert "Slack needs both --slack-bot-token and --slack-signing-secret" in finished.stderr + finished.stdout
    assert not (tmp_path / "data").exists()


def test_serve_enables_slack_from_the_environment_and_email_from_options(tmp_path: Path) -> None:
    box = Mailbox()
    smtp_port, port, redis_port = free_port(), free_port(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    command = [
        *CLI,
        "serve",
        "--port",
        str(port),
        "--redis-port",
        str(redis_port),
        "--inbox",
        "--public-url",
        "https://hitl.example.com",
        "--smtp-url",
        f"smtp://127.0.0.1:{smtp_port}",
        "--mail-from",
        "hitl@example.com",
    ]
    env = _env(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="signing")
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("serve did not come up")
        forged = httpx.post(
            f"http://127.0.0.1:{port}/channels/slack/interactivity",
            content=b"payload=%7B%7D",
            headers={"x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": "v0=00"},
        )
        assert forged.status_code == 401
        body = {"token": "t1", "message": "Deploy?", "actions": APPROVE_DENY, "channel": "email:ops@example.com"}
        created = httpx.post(f"http://127.0.0.1:{port}{API}/requests", json=body, timeout=10)
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        ((to, mail),) = box.messages
        assert to == ["ops@example.com"] and mail["Message-ID"] == f"<hitl.{request_id}@hitl.example.com>"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # a failed test: Ctrl-C first, so serve stops the Valkey it started
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        controller.stop()
    assert process.returncode == 0, output
    assert "  slack:    interactivity at https://hitl.example.com/channels/slack/interactivity" in output
    assert '  email:    enabled (channel="email" or "email:ADDRESS")' in output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://u:p@h:587?starttls=1", ("h", 587, "u", "p", False, True)),
        ("smtp://h?starttls=1", ("h", 587, None, None, False, True)),
        ("smtps://u:p@h", ("h", 465, "u", "p", True, False)),
        ("smtp://h", ("h", 25, None, None, False, None)),
        ("smtp://h:2525?starttls=0", ("h", 2525, None, None, False, False)),
    ],
)
def test_smtp_urls(url: str, expected: tuple[object, ...]) -> None:
    from hitl_streams.channels.email_smtp import SmtpSettings

    s = SmtpSettings.from_url(url)
    assert (s.host, s.port, s.username, s.password, s.use_tls, s.start_tls) == expected
