"""Who may use the UI and what it serves: logins for --listen, and a file route that hands out
nothing by path (models, states, dataset lists, the venv, anything outside the workspace)."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from app.access import GENERATED_USER, logins
from modules.errors import UserError
from tests.conftest import REPO
from tests.helpers.browser import gradio_ready, ui  # noqa: F401  (fixture)


def test_logins_follow_the_options(tmp_path, monkeypatch):
    monkeypatch.delenv("VOICETUNE_AUTH", raising=False)
    assert logins(None, None, listen=False, no_auth=False) == ([], None)  # 127.0.0.1: nothing changes
    pairs, generated = logins(None, None, listen=True, no_auth=False)
    assert generated and generated[0] == GENERATED_USER and len(generated[1]) >= 12 and pairs == [generated]
    assert logins(None, None, listen=True, no_auth=True) == ([], None)
    assert logins("ann:s3cret", None, listen=True, no_auth=False) == ([("ann", "s3cret")], None)
    f = tmp_path / "logins"
    f.write_text("# team\nann:one\n\nbob:two:with:colons\n")
    assert logins(None, str(f), listen=True, no_auth=False)[0] == [("ann", "one"), ("bob", "two:with:colons")]
    monkeypatch.setenv("VOICETUNE_AUTH", "env:pw")
    assert logins(None, None, listen=True, no_auth=False) == ([("env", "pw")], None)
    with pytest.raises(UserError, match="USER:PASSWORD"):
        logins("nopassword", None, listen=True, no_auth=False)
    with pytest.raises(UserError, match="contradicts"):
        logins("a:b", None, listen=True, no_auth=True)


def _workspace(tmp_path):
    ws = tmp_path / "ws"
    for rel in ("models/tortoise/dvae.pth", "training/demo/train.txt",
                "training/demo/runs/r/states/step_00000002.pt", "training/demo/audio/a.wav"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(b"secret")
    (ws / "voices").mkdir()
    return ws


def _get(opener, url: str) -> int:
    try:
        with opener.open(url, timeout=20) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_file_route_serves_nothing_by_path(ui, tmp_path):  # noqa: F811
    ws = _workspace(tmp_path)
    app = ui.start(ws)
    opener = urllib.request.build_opener()
    probes = ["models/tortoise/dvae.pth", "training/demo/train.txt", "training/demo/runs/r/states/step_00000002.pt",
              "training/demo/audio/a.wav"]
    paths = [str(ws / p) for p in probes] + [str(REPO / ".venv" / "pyvenv.cfg"), str(REPO / "app" / "main.py"),
                                             "/etc/passwd"]
    for path in paths:
        code = _get(opener, f"{app.url}gradio_api/file={urllib.parse.quote(path)}")
        assert code in (403, 404), (path, code)


def test_listen_requires_the_login_in_http_and_in_the_browser(ui, tmp_path):  # noqa: F811
    ws = _workspace(tmp_path)
    app = ui.start(ws, extra_args=["--listen", "--auth", "ann:s3cret-pass"])
    plain = urllib.request.build_opener()
    listed = f"gradio_api/file={urllib.parse.quote(str(ws / 'training/demo/train.txt'))}"
    for route in ("config", "gradio_api/info", listed):
        assert _get(plain, app.url + route) in (401, 403), route
    # wrong password refused, right one accepted (Gradio's own login route)
    jar = http.cookiejar.CookieJar()
    session = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    bad = urllib.parse.urlencode({"username": "ann", "password": "wrong"}).encode()
    assert _get(session, urllib.request.Request(app.url + "login", data=bad)) in (400, 401)
    good = urllib.parse.urlencode({"username": "ann", "password": "s3cret-pass"}).encode()
    assert _get(session, urllib.request.Request(app.url + "login", data=good)) == 200
    assert _get(session, app.url + "config") == 200
    with session.open(app.url + "gradio_api/info", timeout=20) as resp:
        info = json.loads(resp.read())
    names = json.dumps(info)
    assert "on_confirm" not in names and "delete_selected" not in names  # destructive handlers: no API route
    # the browser shows the login form; a wrong password stays out, the right one gets in
    page = ui.page()
    page.goto(app.url)
    page.locator("input[type=password]").wait_for(timeout=30_000)
    page.locator("input[type=text]").first.fill("ann")
    page.locator("input[type=password]").fill("wrong")
    page.keyboard.press("Enter")
    page.get_by_text("Incorrect").first.wait_for(timeout=15_000)
    assert not page.locator("#voicetune-tabs").is_visible()
    page.screenshot(path=str(ui.log_dir / "login_refused.png"))
    page.locator("input[type=text]").first.fill("ann")
    page.locator("input[type=password]").fill("s3cret-pass")
    page.get_by_role("button", name="Login", exact=True).click()
    gradio_ready(page)


def test_listen_without_a_login_generates_one_and_prints_it(ui, tmp_path):  # noqa: F811
    ws = _workspace(tmp_path)
    app = ui.start(ws, extra_args=["--listen"], env={"VOICETUNE_AUTH": ""})
    log = app.wait_for_log("Press Ctrl+C")
    assert f"Login: user {GENERATED_USER}, password " in log
    assert _get(urllib.request.build_opener(), app.url + "config") in (401, 403)
    app2 = ui.start(ws, extra_args=["--listen", "--no-auth"])
    assert "warning: --no-auth" in app2.wait_for_log("Press Ctrl+C")
    assert _get(urllib.request.build_opener(), app2.url + "config") == 200
