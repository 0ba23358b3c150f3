"""``%%claude`` / ``%claude`` through a real InteractiveShell, the real ``anthropic`` SDK and
the fake Messages API server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_magic.errors import AuthenticationError, MagicUsageError
from claude_magic.magics import get_magics
from claude_magic.testing.fake_server import FakeMessagesServer
from claude_magic.testing.shell import TestingShell


def cell(shell: TestingShell, options: str, prompt: str) -> None:
    shell.run_cell(f"%%claude {options}\n{prompt}")


def answers(shell: TestingShell) -> list[dict]:
    """Published outputs that carry an answer (text/markdown or text/plain)."""
    return [d for d in shell.displayed if "text/plain" in d["data"]]


def test_streams_into_one_display_updated_in_place(ip: TestingShell,
                                                   server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new t --system 'Be brief'")
    server.reply("Hello there, friend", chunks=["Hello", " there", ", friend"])
    cell(ip, "", "Say hi")
    outputs = answers(ip)
    first, updates = outputs[0], outputs[1:]
    display_id = first["transient"]["display_id"]
    assert updates and all(u["update"] and u["transient"]["display_id"] == display_id
                           for u in updates)
    texts = [u["data"]["text/markdown"] for u in updates]
    assert texts[-1] == "Hello there, friend"
    assert any(t == "Hello" for t in texts)  # the partial answer was shown before the end
    meta = updates[-1]["metadata"]["claude_magic"]
    assert meta["session_id"] == "t" and meta["turn"] == 1
    assert meta["model"] == "claude-test-model" and meta["usage"]["output_tokens"] > 0
    assert ip.user_ns["_"] == "Hello there, friend"
    assert ip.user_ns["_"].session_id == "t"


def test_second_turn_carries_system_prompt_and_history(ip: TestingShell,
                                                       server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new ctx --system 'You are terse.'")
    server.reply("Paris.")
    cell(ip, "", "Capital of France?")
    server.reply("About 2 million.")
    cell(ip, "", "Population?")
    body = server.message_requests[-1].body
    assert body["system"] in ("You are terse.", [{"type": "text", "text": "You are terse."}])
    assert [(m["role"], m["content"]) for m in server.message_requests[-1].messages] == [
        ("user", "Capital of France?"), ("assistant", "Paris."), ("user", "Population?")]
    assert body["model"] == "claude-test-model"


def test_braces_arrive_byte_for_byte(ip: TestingShell, server: FakeMessagesServer) -> None:
    code = ('def f(x):\n    d = {"a": {1, 2}, "b": {}}\n    return f"{x!r} {d[\'a\']}" '
            '+ "{}".format(x) + "{{literal}}"\n# {not_defined} {In[99]} {Out[5]}\n')
    ip.run_cell("%claude_session new code")
    ip.run_cell("x = 1")  # exists, but only a bare {x} would be replaced
    cell(ip, "", code)
    # exactly as typed; only the newline(s) IPython leaves at the end of a cell are dropped
    assert server.message_requests[-1].messages[-1]["content"] == code.rstrip("\n")


def test_fenced_code_is_never_interpolated(ip: TestingShell,
                                           server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new fenced")
    ip.run_cell("i = 42\nname = 'Ada'")
    prompt = ('Why does this print {name}?\n```python\nfor i in range(3):\n'
              '    print(f"{i} {name}")\n```\nand {_} stays, {i} is replaced.')
    cell(ip, "", prompt)
    assert server.message_requests[-1].messages[-1]["content"] == (
        'Why does this print Ada?\n```python\nfor i in range(3):\n'
        '    print(f"{i} {name}")\n```\nand {_} stays, 42 is replaced.')


def test_interpolates_names_attributes_and_history(ip: TestingShell,
                                                   server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new interp")
    ip.run_cell("name = 'Ada'\nclass P: pass\np = P(); p.title = 'Countess'")
    cell(ip, "", "Hi {name}, {p.title}; keep {{name}} and {missing} and {p.nope}")
    sent = server.message_requests[-1].messages[-1]["content"]
    assert sent == "Hi Ada, Countess; keep {{name}} and {missing} and {p.nope}"
    cell(ip, "--no-interpolate", "Hi {name}")
    assert server.message_requests[-1].messages[-1]["content"] == "Hi {name}"


def test_output_variable_and_no_stream(ip: TestingShell, server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new out")
    server.reply("Forty-two", chunks=["Forty", "-two"])
    cell(ip, "--no-stream -o answer", "What is the answer?")
    assert ip.user_ns["answer"] == "Forty-two"
    outputs = answers(ip)
    assert len(outputs) == 1 and not outputs[0]["update"]
    assert outputs[0]["metadata"]["claude_magic"]["session_id"] == "out"


def test_format_code_puts_code_in_next_cell(ip: TestingShell,
                                            server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new c")
    server.reply("Here:\n```python\nprint('hi')\n```\nDone.")
    cell(ip, "-f code", "Write hello world")
    assert ip.rl_next_input == "print('hi')"


def test_format_json_parses_or_fails_clearly(ip: TestingShell,
                                             server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new j")
    server.reply('```json\n{"a": [1, 2]}\n```')
    cell(ip, "-f json -o data", "Give JSON")
    assert ip.user_ns["data"] == {"a": [1, 2]}
    server.reply("not json at all")
    with pytest.raises(MagicUsageError, match="not valid JSON"):
        cell(ip, "-f json", "Give JSON again")


def test_overrides_reach_the_request(ip: TestingShell, server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new o --system 'Session prompt'")
    cell(ip, "-m claude-other --max-tokens 77 --system 'Turn prompt'", "Hi")
    body = server.message_requests[-1].body
    assert body["model"] == "claude-other" and body["max_tokens"] == 77
    assert "Turn prompt" in str(body["system"])


def test_session_option_is_for_one_cell(ip: TestingShell, server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new a")
    ip.run_cell("%claude_session new b")
    cell(ip, "-s a", "to a")
    assert get_magics(ip).workspace.current == "b"
    manager = get_magics(ip).manager
    asked = manager.resume("a").messages
    assert [m.role for m in asked] == ["user", "assistant"] and asked[0].content == "to a"
    assert manager.resume("b").messages == []


def test_new_option_and_default_session(ip: TestingShell, server: FakeMessagesServer) -> None:
    cell(ip, "", "no session yet")
    first = get_magics(ip).workspace.current
    assert first is not None and len(get_magics(ip).manager.resume(first).messages) == 2
    cell(ip, "--new fresh --system 'New prompt'", "hello")
    assert get_magics(ip).workspace.current == "fresh"
    assert get_magics(ip).manager.resume("fresh").system_prompt == "New prompt"
    assert server.message_requests[-1].messages == [{"role": "user",
                                                             "content": "hello"}]


def test_line_magic(ip: TestingShell, server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new line")
    server.reply("Yes.")
    # (a line ending in "?" is IPython's help syntax, so one-line prompts avoid it)
    ip.run_cell("%claude say {this} in one word.")
    assert server.message_requests[-1].messages[-1]["content"] == \
        "say {this} in one word."


def test_backend_failure_is_one_line_and_keeps_prompt(ip: TestingShell,
                                                      server: FakeMessagesServer) -> None:
    ip.run_cell("%claude_session new fail")
    server.fail(401)
    with pytest.raises(AuthenticationError) as info:
        cell(ip, "", "Will this work?")
    rendered = info.value._render_traceback_()
    assert len(rendered) == 1 and "sk-test-key" not in rendered[0]
    messages = get_magics(ip).manager.resume("fail").messages
    assert [(m.role, m.status) for m in messages] == [("user", "error")]
    assert messages[0].content == "Will this work?" and messages[0].error


def test_empty_cell_and_bad_options(ip: TestingShell) -> None:
    with pytest.raises(MagicUsageError, match="nothing to send"):
        cell(ip, "", "   ")
    with pytest.raises(MagicUsageError, match="invalid choice"):
        cell(ip, "-f yaml", "hi")
    with pytest.raises(MagicUsageError, match="--max-tokens must be from 1 to 1,000,000"):
        cell(ip, "--max-tokens 0", "hi")


def test_restart_sends_earlier_history(ip: TestingShell, server: FakeMessagesServer,
                                       store_dir: Path) -> None:
    ip.run_cell("%claude_session new long --system 'Remember things.'")
    server.reply("Noted: blue.")
    cell(ip, "", "My favourite colour is blue.")
    ip.run_cell("%unload_ext claude_magic")

    again = TestingShell.fresh()  # a new kernel on the same folder
    again.run_cell("%load_ext claude_magic")
    again.run_cell("%config ClaudeMagics.backend = 'anthropic'")
    again.run_cell("%claude_session switch long")
    cell(again, "", "What is my favourite colour?")
    body = server.message_requests[-1].body
    assert [m["content"] for m in server.message_requests[-1].messages] == [
        "My favourite colour is blue.", "Noted: blue.", "What is my favourite colour?"]
    assert "Remember things." in str(body["system"])
    for path in store_dir.iterdir():
        if path.is_file():
            assert "sk-test-key-never-stored" not in path.read_text(errors="replace")


def test_offline_echo_without_key_is_labelled(shell: TestingShell) -> None:
    shell.run_cell("%claude_session new offline")
    cell(shell, "--no-stream", "Hello?")
    response = shell.user_ns["_"]
    assert response.offline and "no model" in str(response).lower()


def test_bad_configuration_is_one_line(shell: TestingShell) -> None:
    shell.run_cell("%claude_session new cfg")
    shell.run_cell("%config ClaudeMagics.backend = 'nope'")
    with pytest.raises(MagicUsageError, match="unknown backend 'nope'"):
        cell(shell, "", "hi")
    shell.run_cell("%config ClaudeMagics.backend = 'echo'")
    shell.run_cell("%config ClaudeMagics.backend_options = {'bogus': 1}")
    with pytest.raises(MagicUsageError, match="bogus"):
        cell(shell, "", "hi")


def test_claude_code_runs_in_the_notebook_directory(shell: TestingShell, store_dir: Path,
                                                    tmp_path: Path) -> None:
    from claude_magic.testing.fake_claude import FakeClaude

    fake = FakeClaude(tmp_path / "fake-claude")
    shell.run_cell("%config ClaudeMagics.backend = 'claude-code'")
    shell.run_cell(f"%config ClaudeMagics.backend_options = {{'claude_binary': '{fake.path}'}}")
    shell.run_cell("%claude_session new cli")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shell.run_cell(f"%cd {elsewhere}")
    cell(shell, "", "first")
    cell(shell, "", "second")
    calls = fake.calls
    assert [c["cwd"] for c in calls] == [str(store_dir.parent)] * 2
    assert "--session-id" in calls[0]["argv"] and "--resume" in calls[1]["argv"]


def test_mid_stream_failure_keeps_partial_answer(ip: TestingShell,
                                                 server: FakeMessagesServer) -> None:
    from claude_magic.errors import BackendError

    ip.run_cell("%claude_session new partial")
    server.fail_mid_stream("The first half", after=2)
    with pytest.raises(BackendError) as info:
        cell(ip, "", "Tell me everything")
    assert len(info.value._render_traceback_()) == 1
    final = answers(ip)[-1]["data"]["text/markdown"]
    assert final.startswith("The first") and "answer incomplete" in final
    messages = get_magics(ip).manager.resume("partial").messages
    assert [(m.role, m.status) for m in messages] == [("user", "error"),
                                                      ("assistant", "incomplete")]
    server.reply("Second try works.")
    cell(ip, "", "Again please")
    sent = server.message_requests[-1].messages
    assert sent == [{"role": "user", "content": "Again please"}]  # the failed turn is not resent


def test_new_is_checked_first_and_can_rerun(ip: TestingShell,
                                            server: FakeMessagesServer) -> None:
    manager = get_magics(ip).manager
    with pytest.raises(MagicUsageError, match="from 1 to"):
        cell(ip, "--new review --max-tokens 0", "hi")
    assert not manager.exists("review")  # nothing was created by the refused cell
    cell(ip, "--new review", "first run")
    with pytest.raises(Exception, match="already exists"):
        cell(ip, "--new review", "second run")
    cell(ip, "--new review --overwrite", "second run")
    assert manager.resume("review").messages[0].content == "second run"
    with pytest.raises(MagicUsageError, match="--overwrite goes with --new"):
        cell(ip, "--overwrite", "hi")
