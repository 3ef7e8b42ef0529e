"""The page as a person uses it: URLs, scrolling, refusals, errors, phones, languages, copy."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from gateway import keys
from tests.browser.conftest import shoot
from tests.browser.test_page import open_page, say
from tests.conftest import make_token
from tests.test_turns import expected

LONG = "sim:tokens=400 sim:delay_ms=15"


async def running_reply(page):
    reply = page.locator(".msg.assistant").last
    await expect(reply).to_have_attribute("data-status", "running")
    return reply


@pytest.mark.timeout(90)
async def test_reload_mid_reply_shows_history_and_follows_the_reply(gateway, page) -> None:
    """The URL names the conversation; a reload mid-reply shows the turn and resumes the reply."""
    gw = await gateway()
    await open_page(page, gw)
    prompt = f"reload me {LONG}"
    await say(page, prompt)
    await running_reply(page)
    conv = await page.evaluate("window.gatewayClient.conversationId")
    assert page.url.endswith(f"/c/{conv}")
    await page.wait_for_function("window.gatewayClient.reply.seq > 20")
    await page.reload()
    await expect(page.locator(".msg.user .body")).to_have_text([prompt])
    reply = page.locator(".msg.assistant")
    await expect(reply).to_have_count(1)
    await expect(reply).to_have_attribute("data-status", "complete", timeout=30000)
    assert await page.evaluate("window.gatewayClient.reply.text") == expected(prompt)
    assert await page.evaluate("window.gatewayClient.conversationId") == conv


@pytest.mark.timeout(90)
async def test_a_second_tab_follows_the_running_reply(gateway, page) -> None:
    """Opening the conversation's URL in another tab shows the reply streaming there too."""
    gw = await gateway()
    await open_page(page, gw)
    prompt = f"two tabs {LONG}"
    await say(page, prompt)
    await running_reply(page)
    other = await page.context.new_page()
    await other.goto(page.url)
    await expect(other.locator(".msg.assistant")).to_have_attribute(
        "data-status", "complete", timeout=30000
    )
    assert await other.evaluate("window.gatewayClient.reply.text") == expected(prompt)


@pytest.mark.timeout(90)
async def test_scrolling_up_stops_following_and_offers_jump_to_latest(gateway, page) -> None:
    """A reader who scrolls up stays where they are; "jump to latest" takes them back down."""
    gw = await gateway()
    await page.set_viewport_size({"width": 900, "height": 500})
    await open_page(page, gw)
    await say(page, "scroll sim:chars=60000 sim:tokens=600 sim:delay_ms=10")
    await running_reply(page)
    await page.wait_for_function(
        "document.getElementById('messages').scrollHeight > 3 * document.getElementById('messages').clientHeight"
    )
    await page.hover("#messages")
    await page.mouse.wheel(0, -600)
    await expect(page.locator("#jump")).to_be_visible()
    top = await page.evaluate("document.getElementById('messages').scrollTop")
    await page.wait_for_timeout(800)  # many frames of new text arrive meanwhile
    assert await page.evaluate("document.getElementById('messages').scrollTop") == top
    await page.click("#jump")
    await expect(page.locator("#jump")).to_be_hidden()
    at_bottom = """() => { const m = document.getElementById('messages');
        return m.scrollHeight - m.scrollTop - m.clientHeight < 48; }"""
    await page.wait_for_function(at_bottom)
    await page.wait_for_timeout(300)
    assert await page.evaluate(at_bottom)  # following again
    await expect(page.locator(".msg.assistant").last).to_have_attribute(
        "data-status", "complete", timeout=30000
    )
    await page.wait_for_timeout(200)  # the last frames' settling
    assert await page.evaluate(at_bottom)  # and still at the end when the reply ends


@pytest.mark.timeout(90)
async def test_a_refused_message_keeps_its_text_and_says_why(gateway, page) -> None:
    """Busy (server) and too long (page): the text stays in the input with a plain reason."""
    gw = await gateway("[limits]\nmax_message_chars = 60\n")
    await open_page(page, gw)
    await say(page, f"first {LONG}")
    await running_reply(page)
    await say(page, "second while busy")
    await expect(page.locator("#hint")).to_contain_text("still being written")
    await expect(page.locator("#input")).to_have_value("second while busy")
    await expect(page.locator(".msg.user")).to_have_count(1)  # no bubble that looks sent
    await page.click("#stop")
    await expect(page.locator("#stop")).to_be_hidden()
    await page.fill("#input", "x" * 61)
    await page.keyboard.press("Enter")
    await expect(page.locator("#hint")).to_contain_text("61 characters; the limit is 60")
    await expect(page.locator("#input")).to_have_value("x" * 61)


@pytest.mark.timeout(90)
async def test_upstream_refusal_reads_as_a_sentence_with_retry_and_details(gateway, page) -> None:
    """A 429 upstream: a plain sentence, a retry control, the raw message only under details."""
    gw = await gateway("[upstream]\nmax_retries = 0\n")
    await open_page(page, gw)
    await say(page, "throttle me sim:fault=429")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "failed")
    error = page.locator("#error")
    await expect(error.locator(".text")).to_have_text(
        "The model is busy right now. Try again in a moment."
    )
    await expect(error.locator(".retry")).to_be_visible()
    await expect(error.locator("details summary")).to_have_text("Details")
    await expect(error.locator("details pre")).to_contain_text("upstream_throttled")
    await expect(page.locator("#stop")).to_be_hidden()


@pytest.mark.timeout(90)
async def test_failed_resume_ends_the_running_state(gateway, page) -> None:
    """A resume the server cannot serve (resume_unavailable) ends the reply: no Stop, failed."""
    gw = await gateway()
    await open_page(page, gw)
    await page.evaluate(
        """() => { const c = window.gatewayClient;
          c._onFrame({type: 'start', message_id: 'm-forgotten', reply_to: null});
          c._onFrame({type: 'delta', message_id: 'm-forgotten', seq: 3, text: 'partial'}); }"""
    )
    await expect(page.locator("#stop")).to_be_visible()
    conn = next(iter(gw.app[keys.REGISTRY]))
    conn.ws._req.transport.abort()  # the page reconnects and asks to resume m-forgotten
    reply = page.locator('.msg.assistant[data-id="m-forgotten"]')
    await expect(reply).to_have_attribute("data-status", "failed", timeout=15000)
    await expect(page.locator("#stop")).to_be_hidden()
    await expect(page.locator("#error .text")).to_contain_text("no longer available")


@pytest.mark.timeout(60)
async def test_a_forgotten_conversation_opens_as_a_new_chat_with_a_note(gateway, page) -> None:
    """A /c/ URL the server no longer knows: a short note and a fresh conversation, no error."""
    gw = await gateway()
    await page.goto(str(gw.client.make_url("/c/conv-gone-long-ago")))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(page.locator("#notice")).to_contain_text("no longer kept")
    await expect(page.locator("#error")).to_be_hidden()
    assert await page.evaluate("window.gatewayClient.conversationId") != "conv-gone-long-ago"


INSIDE_VIEW = """() => {
  const view = window.visualViewport;
  const box = (sel) => document.querySelector(sel).getBoundingClientRect();
  const input = box("#input"), send = box("#send"), last = box(".msg.assistant:last-child");
  const visible = (r) => r.top >= view.offsetTop - 1 && r.bottom <= view.offsetTop + view.height + 1;
  return { view: view.height, input: visible(input) && visible(send), inputBottom: input.bottom,
           lastShown: last.bottom > view.offsetTop && last.top < input.top,
           composerFits: document.documentElement.scrollHeight <= innerHeight + 1 };
}"""


@pytest.mark.timeout(60)
async def test_on_a_phone_the_input_stays_above_the_on_screen_keyboard(gateway, browser) -> None:
    """A phone whose keyboard takes 40 % of the screen (the viewport shrinks, as it does with
    interactive-widget=resizes-content): the input, Send and the latest text stay in view."""
    gw = await gateway()
    context = await browser.new_context(
        viewport={"width": 390, "height": 760}, is_mobile=True, has_touch=True, bypass_csp=True
    )
    page = await context.new_page()
    await open_page(page, gw)
    meta = await page.get_attribute('meta[name="viewport"]', "content")
    assert "interactive-widget=resizes-content" in meta
    for n in range(3):  # more than a screenful
        await say(page, f"fill the screen {n} sim:tokens=120 sim:delay_ms=0")
        await expect(page.locator(".msg.assistant").last).to_have_attribute(
            "data-status", "complete"
        )
    await page.focus("#input")
    before = await page.evaluate(INSIDE_VIEW)
    assert before["input"] and before["lastShown"], before
    await page.set_viewport_size({"width": 390, "height": 456})  # the keyboard opens
    await page.wait_for_function("visualViewport.height === 456")
    await page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    after = await page.evaluate(INSIDE_VIEW)
    assert after["input"] and after["lastShown"] and after["composerFits"], after
    assert after["inputBottom"] < before["inputBottom"] - 250  # it moved up with the keyboard
    assert await page.evaluate("document.activeElement.id") == "input"
    await page.fill("#input", "typed above the keyboard")
    await page.screenshot(path=shoot("page-phone-keyboard"))
    await context.close()


@pytest.mark.timeout(60)
async def test_phone_drawer_lists_conversations_and_starts_a_new_chat(gateway, browser) -> None:
    """Below 640 px the sidebar is a drawer: the menu opens it, New chat works, Esc closes it."""
    gw = await gateway()
    context = await browser.new_context(viewport={"width": 390, "height": 760}, bypass_csp=True)
    page = await context.new_page()
    await open_page(page, gw)
    await say(page, "phone sim:tokens=5 sim:delay_ms=0")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    first = await page.evaluate("window.gatewayClient.conversationId")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await page.click("#menu")
    await expect(page.locator("#sidebar")).to_be_visible()
    await expect(page.locator(f'#history button[data-id="{first}"]')).to_be_visible()
    await page.screenshot(path=shoot("page-phone-drawer"))
    await page.keyboard.press("Escape")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await page.click("#menu")
    await page.click("#new-chat")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await expect(page.locator(".msg")).to_have_count(0)
    await page.wait_for_function(f"window.gatewayClient.conversationId !== '{first}'")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await context.close()


@pytest.mark.timeout(60)
async def test_the_page_speaks_simplified_chinese_from_the_browser_language(
    gateway, browser
) -> None:
    """navigator.language zh-CN: controls, states and error sentences are in Chinese."""
    gw = await gateway("[limits]\nmax_message_chars = 10\n")
    context = await browser.new_context(locale="zh-CN", bypass_csp=True)
    page = await context.new_page()
    await open_page(page, gw)
    await expect(page.locator("#send")).to_have_text("发送")
    await expect(page.locator("#new-chat")).to_have_text("新对话")
    await expect(page.locator("#status")).to_have_text("已连接")
    assert await page.evaluate("document.documentElement.lang") == "zh-CN"
    await page.fill("#input", "这条消息太长了，超过了十个字")
    await page.keyboard.press("Enter")
    await expect(page.locator("#hint")).to_contain_text("上限为 10")
    await page.fill("#input", "你好 sim:fault=429")
    await page.evaluate("document.getElementById('composer').requestSubmit()")
    await expect(page.locator("#hint")).to_contain_text("上限")  # still too long: refused
    await context.close()


@pytest.mark.timeout(60)
async def test_every_string_has_a_chinese_translation() -> None:
    """The English and Chinese tables name the same keys (no string shows only in English)."""
    from pathlib import Path

    source = (Path(__file__).parents[2] / "gateway/static/i18n.js").read_text()
    tables = re.findall(r"\n  (en|zh): \{\n(.*?)\n  \},", source, re.S)
    keys_of = {}
    for name, body in tables:
        keys_of.setdefault(name, []).append(set(re.findall(r'^\s+("?[\w ]+"?):', body, re.M)))
    assert len(keys_of["en"]) == len(keys_of["zh"]) == 2
    for en, zh in zip(keys_of["en"], keys_of["zh"], strict=True):
        assert en == zh


@pytest.mark.timeout(90)
async def test_copy_controls_copy_the_message_and_the_code(gateway, browser) -> None:
    """Each message and each code block has a copy control that puts its exact text on the clipboard."""
    gw = await gateway()
    context = await browser.new_context(bypass_csp=True)
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    await open_page(page, gw)
    prompt = "copy this sim:tokens=30 sim:delay_ms=0"
    await say(page, prompt)
    reply = page.locator(".msg.assistant").last
    await expect(reply).to_have_attribute("data-status", "complete")
    await reply.locator(".tools .copy").click()
    assert await page.evaluate("navigator.clipboard.readText()") == expected(prompt)
    await reply.locator(".copy-code").first.click()
    code = await reply.locator("pre code").first.text_content()
    assert await page.evaluate("navigator.clipboard.readText()") == code
    assert "return x * 2" in code
    await page.locator(".msg.user .tools .copy").click()
    assert await page.evaluate("navigator.clipboard.readText()") == prompt
    await context.close()


@pytest.mark.timeout(90)
async def test_keyboard_focus_esc_and_one_announcement(gateway, page) -> None:
    """Focus stays on the input after Send and Stop; Esc stops; aria-busy while streaming;
    the end is announced once, and the message list is no live region."""
    gw = await gateway()
    await open_page(page, gw)
    await say(page, f"keys {LONG}")
    reply = await running_reply(page)
    assert await page.evaluate("document.activeElement.id") == "input"
    await expect(reply).to_have_attribute("aria-busy", "true")
    assert await page.get_attribute("#messages", "aria-live") is None
    await page.keyboard.press("Escape")
    await expect(reply).to_have_attribute("data-status", "cancelled")
    assert await reply.get_attribute("aria-busy") is None
    assert await page.evaluate("document.activeElement.id") == "input"
    await expect(page.locator("#announce")).to_have_text("The reply was stopped.")
    await say(page, f"again {LONG}")
    await running_reply(page)
    await page.focus("#stop")
    await page.keyboard.press("Enter")
    await expect(page.locator("#stop")).to_be_hidden()
    assert await page.evaluate("document.activeElement.id") == "input"


SAMPLE = """# Title

Some *em*, **strong**, ~~gone~~ and `code` https://example.com/x

| a | b |
|---|---|
| 1 | 2 |

- [x] done
- [ ] todo

> quoted

1. one
   1. inner
2. two

```python
def f():
    return 1
```

<img src=x onerror=window.__pwned=1>

```html
<svg onload=window.__pwned=1></svg><script>window.__pwned=1</script>
```
"""

RENDER = """async ([text, step]) => {
  const m = await import(new URL('../static/render.js', location.href).href);
  const whole = document.createElement('div');
  whole.append(m.renderMarkdown(text));
  const box = document.createElement('div');
  const view = new m.StreamView(box);
  for (let i = 0; i < text.length; i += step) view.append(text.slice(i, i + step));
  view.finish();
  document.body.append(whole);
  const streamed = [...box.querySelectorAll('.piece')].map((p) => p.innerHTML).join('');
  return [whole.innerHTML, streamed];
}"""


@pytest.mark.timeout(60)
async def test_markdown_renders_tables_lists_quotes_and_highlighted_code(gateway, page) -> None:
    """CommonMark + GFM (tables, strikethrough, task lists), nested lists, highlighted code;
    raw HTML and HTML in code blocks stay text; streamed in small pieces, it renders the same."""
    gw = await gateway()
    await open_page(page, gw)
    whole, streamed = await page.evaluate(RENDER, [SAMPLE, 7])
    assert streamed == whole
    html = whole
    for fragment in (
        "<h1>Title</h1>",
        "<s>gone</s>",
        "<em>em</em>",
        "<td>1</td>",
        'type="checkbox"',
        "<blockquote>",
        "<li>inner</li>",
        '<span class="hljs-keyword">def</span>',
        'href="https://example.com/x" target="_blank" rel="noopener noreferrer nofollow"',
        "&lt;img src=x onerror=window.__pwned=1&gt;",
    ):
        assert fragment in html, fragment
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("body > div img, body > div svg, body > div script").count() == 0


@pytest.mark.timeout(60)
async def test_long_blocks_stream_in_bounded_pieces_with_the_same_text(gateway, page) -> None:
    """A long paragraph and a long code block are cut into pieces as they stream, and the
    text shown (and the code, for copying) is exactly the text received."""
    gw = await gateway()
    await open_page(page, gw)
    lines = "\n".join(f"line {i} of a paragraph that goes on" for i in range(400))
    code = "\n".join(f"x{i} = {i}" for i in range(600))
    text = f"{lines}\n\n```python\n{code}\n```\n"
    result = await page.evaluate(
        """async (text) => {
          const m = await import(new URL('../static/render.js', location.href).href);
          const box = document.createElement('div');
          const view = new m.StreamView(box);
          for (let i = 0; i < text.length; i += 50) view.append(text.slice(i, i + 50));
          view.finish();
          const pieces = box.querySelectorAll('.piece');
          const code = [...box.querySelectorAll('pre code')].map((c) => c.textContent).join('');
          return [pieces.length, Math.max(...[...pieces].map((p) => p.textContent.length)), code];
        }""",
        text,
    )
    count, biggest, shown_code = result
    assert count > 10 and biggest < 4000
    assert shown_code == code + "\n"


HOSTILE = [
    "<svg onload=window.__pwned=1><circle r=9></circle></svg>",
    "[click](javascript:window.__pwned=1) [b](JaVaScRiPt:window.__pwned=1)",
    "[c](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==) <javascript:window.__pwned=1>",
    "[d](java&#x09;script:window.__pwned=1) ![e](x onerror=window.__pwned=1)",
    '<a href="javascript:window.__pwned=1">f</a> <iframe src="javascript:window.__pwned=1"></iframe>',
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_text_stays_inert_in_both_bubbles(gateway, page, hostile) -> None:
    """SVG handlers, javascript:/data: links (any case, entity tricks) and raw HTML, streamed
    back by the model: shown as text, nothing runs, no live element or dangerous link appears."""
    gw = await gateway()
    await open_page(page, gw)
    await say(page, f"x {hostile} sim:tokens=30 sim:delay_ms=2")
    reply = page.locator(".msg.assistant").last
    await expect(reply).to_have_attribute("data-status", "complete")
    assert await page.evaluate("window.__pwned") is None
    for selector in ("svg", "img", "script", "iframe", "[onload]", "[onerror]"):
        assert await page.locator(f".msg {selector}").count() == 0, selector
    # Resolved: a link with no href, or one that stays on http(s) (a "java%09script:" path).
    hrefs = await page.eval_on_selector_all(".msg a", "els => els.map(a => a.href)")
    assert all(h == "" or h.startswith(("http:", "https:")) for h in hrefs), hrefs
    await expect(page.locator(".msg.user .body")).to_contain_text(hostile.strip()[:20])


@pytest.mark.timeout(60)
async def test_sign_in_notice_links_to_the_configured_url(gateway, page) -> None:
    """auth.required and no token: a sign-in notice at once, linking to server.sign_in_url."""
    gw = await gateway(
        '[auth]\nrequired = true\n[server]\nsign_in_url = "https://login.example/start"\n'
    )
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await page.goto(str(gw.client.make_url("/")))
    notice = page.locator("#notice")
    await expect(notice).to_contain_text("sign in")
    await expect(notice.locator("a")).to_have_attribute("href", "https://login.example/start")
    assert sockets == []  # no doomed connection


@pytest.mark.timeout(60)
async def test_a_token_handed_over_in_the_fragment_is_taken_and_kept(gateway, page) -> None:
    """#token=... signs the page in, leaves the address bar at once, and is kept for next time."""
    gw = await gateway("[auth]\nrequired = true\n")
    token = make_token("alice")
    await page.goto(str(gw.client.make_url("/")) + f"#token={token}")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert "token" not in page.url
    assert [c.user for c in gw.app[keys.REGISTRY]] == ["alice"]
    await page.goto(str(gw.client.make_url("/")))
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert await page.evaluate("localStorage.getItem('gw_token')") == token


@pytest.mark.timeout(90)
async def test_conversation_url_reloads_under_a_prefix_behind_nginx(gateway, page, nginx) -> None:
    """Behind nginx under /chat/, /chat/c/{id} is the conversation's URL and reloads into it."""
    gw = await gateway()
    base = await nginx(gw.client.port)
    await page.goto(base + "/chat/")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    prompt = "prefixed sim:tokens=10 sim:delay_ms=0"
    await say(page, prompt)
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    conv = await page.evaluate("window.gatewayClient.conversationId")
    assert page.url == f"{base}/chat/c/{conv}"
    await page.reload()
    await expect(page.locator(".msg.user .body")).to_have_text([prompt])
    await expect(page.locator(".msg.assistant .body")).to_contain_text("You said")
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")


async def frames_sent(page) -> list[dict]:
    return await page.evaluate("window.__sent")


SNIFF = """(() => { window.__sent = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { window.__sent.push(JSON.parse(data)); return send.call(this, data); };
})()"""


async def stored_history(page, conv: str) -> list[tuple[str, str, str]]:
    """(role, status, content) of the conversation's history, as the page's own caller."""
    body = await page.evaluate(
        "async (id) => (await fetch(`/api/v1/conversations/${id}/messages`)).json()", conv
    )
    return [(m["role"], m["status"], m["content"]) for m in body["messages"]]


@pytest.mark.timeout(60)
async def test_regenerate_and_edit_replace_the_reply_in_history_and_on_the_page(
    gateway, page
) -> None:
    """Regenerate sends {"type":"regenerate"}: the page shows the new reply in place of the
    old, which history keeps as `replaced` (and a reload does not show). Edit puts the text
    back in the input and sends {"type":"edit","message_id","text"}: history then holds the
    edited message and its one new reply, and so does the page."""
    gw = await gateway()
    await page.add_init_script(SNIFF)
    await open_page(page, gw)
    prompt = "edit me sim:tokens=5 sim:delay_ms=0"
    await say(page, prompt)
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    first = await page.locator(".msg.assistant").last.get_attribute("data-id")
    conv = await page.evaluate("window.gatewayClient.conversationId")
    await page.locator(".msg.assistant .regenerate").click()
    await page.wait_for_function("window.__sent.some(f => f.type === 'regenerate')")
    assert await page.evaluate("document.activeElement.id") == "input"
    await expect(page.locator(f'.msg.assistant[data-id="{first}"]')).to_have_count(0)
    await expect(page.locator(".msg.assistant")).to_have_count(1)
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    assert [(r, s) for r, s, _ in await stored_history(page, conv)] == [
        ("user", "complete"),
        ("assistant", "replaced"),
        ("assistant", "complete"),
    ]
    await page.reload()
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(page.locator(".msg.assistant")).to_have_count(1)
    user = page.locator(".msg.user").first
    message_id = await user.get_attribute("data-id")
    await user.locator(".edit").click()
    await expect(page.locator("#input")).to_have_value(prompt)
    await page.fill("#input", "edited sim:tokens=5 sim:delay_ms=0")
    await page.keyboard.press("Enter")
    await page.wait_for_function("window.__sent.some(f => f.type === 'edit')")
    edit = next(f for f in await frames_sent(page) if f["type"] == "edit")
    assert edit == {
        "type": "edit",
        "message_id": message_id,
        "text": "edited sim:tokens=5 sim:delay_ms=0",
    }
    await expect(page.locator(".msg.user .body")).to_have_text(
        ["edited sim:tokens=5 sim:delay_ms=0"]
    )
    await expect(page.locator(".msg.assistant")).to_have_count(1)
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    history = await stored_history(page, conv)
    assert [(r, s) for r, s, _ in history] == [("user", "complete"), ("assistant", "complete")]
    assert history[0][2] == "edited sim:tokens=5 sim:delay_ms=0"


@pytest.mark.timeout(60)
async def test_images_attach_with_previews_and_limits_said_before_sending(gateway, page) -> None:
    """Attach shows a preview, uploads the image (POST api/v1/images) and names it in
    `images` as {id, media_type, bytes}, which the gateway takes (the reply acknowledges it, the sent bubble and, after a reload, history show
    it); a file over the size
    limit, or not an image, is refused with a sentence before anything is sent."""
    gw = await gateway()
    await page.add_init_script(SNIFF)
    await open_page(page, gw)
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
    )
    await page.set_input_files(
        "#file", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": png}]
    )
    await expect(page.locator("#attachments img")).to_have_count(1)
    big = {"name": "huge.png", "mimeType": "image/png", "buffer": b"\0" * (5 * 1024 * 1024 + 1)}
    await page.set_input_files("#file", files=[big])
    await expect(page.locator("#hint")).to_contain_text("images may be at most 5.0 MB")
    text = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}
    await page.set_input_files("#file", files=[text])
    await expect(page.locator("#hint")).to_contain_text("not a PNG, JPEG, WebP or GIF")
    await expect(page.locator("#attachments img")).to_have_count(1)
    await page.fill("#input", "what is this? sim:tokens=5 sim:delay_ms=0")
    await page.keyboard.press("Enter")
    await page.wait_for_function("window.__sent.some(f => f.type === 'message')")
    message = next(f for f in await frames_sent(page) if f["type"] == "message")
    [sent] = message["images"]
    assert (sent["media_type"], sent["bytes"]) == ("image/png", len(png))
    kept = await gw.app[keys.BACKENDS].images.get(sent["id"])
    assert kept is not None and bytes(kept.data) == png
    # The gateway takes it: the sent bubble keeps the picture, the reply acknowledges it.
    await expect(page.locator(".msg.user[data-status=sent]")).to_have_count(1)
    await expect(page.locator("#attachments")).to_be_hidden()
    await expect(page.locator(".msg.user .pictures img")).to_have_count(1)
    await expect(page.locator(".msg.assistant .body").last).to_contain_text(
        "I see 1 image (image/png, 0.1 KB)"
    )
    # History keeps it: after a reload the bubble shows the picture the gateway serves.
    await page.reload()
    await expect(page.locator(".msg.user .pictures img")).to_have_count(1)
    await page.wait_for_function(
        "document.querySelector('.msg.user .pictures img').naturalWidth === 1"
    )


@pytest.mark.timeout(60)
async def test_rename_and_delete_change_the_sidebar_and_the_server(gateway, page) -> None:
    """Rename sends PATCH {"title"} and the sidebar shows the new title; Delete sends DELETE
    for that conversation's URL, its row leaves the sidebar and the server has forgotten it."""
    gw = await gateway()
    await open_page(page, gw)
    await say(page, "name me sim:tokens=5 sim:delay_ms=0")
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    conv = await page.evaluate("window.gatewayClient.conversationId")
    row = page.locator(f'#history li[data-id="{conv}"]')
    await expect(row).to_be_visible()
    await expect(row.locator(".title")).to_have_text("name me sim:tokens=5 sim:delay_ms=0")
    page.once("dialog", lambda d: d.accept("A better title"))
    async with page.expect_request(lambda r: r.method == "PATCH") as patched:
        await row.locator(".rename").click()
    request = await patched.value
    assert request.url.endswith(f"/api/v1/conversations/{conv}")
    assert request.post_data_json == {"title": "A better title"}
    await expect(row.locator(".title")).to_have_text("A better title")
    page.once("dialog", lambda d: d.accept())
    async with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        await row.locator(".delete").click()
    response = await deleted.value
    assert response.url.endswith(f"/api/v1/conversations/{conv}")
    assert response.status == 204
    await expect(row).to_have_count(0)
    status = await page.evaluate(
        "async (id) => (await fetch(`/api/v1/conversations/${id}/messages`)).status", conv
    )
    assert status == 404


@pytest.mark.timeout(60)
async def test_reasoning_shows_as_a_thinking_block_and_queued_as_a_position(gateway, page) -> None:
    """`reasoning` frames fill a "Thinking" block, open while it streams and folded with its
    duration once the answer starts; `queued` shows the position. (The frames are handed to
    the page's real client: this gateway's upstream path does not produce them yet.)"""
    gw = await gateway()
    await open_page(page, gw)
    feed = """(frames) => frames.forEach((f) => window.gatewayClient._onFrame(f))"""
    await page.evaluate(feed, [{"type": "queued", "reply_to": "c-x", "position": 3}])
    await expect(page.locator("#hint")).to_have_text("Waiting for the model: 3 ahead of you.")
    await page.evaluate(
        feed,
        [
            {"type": "start", "message_id": "m-r", "reply_to": "c-x"},
            {"type": "reasoning", "message_id": "m-r", "seq": 1, "text": "Let me think <b>"},
            {"type": "reasoning", "message_id": "m-r", "seq": 2, "text": "about it."},
        ],
    )
    thinking = page.locator('.msg[data-id="m-r"] details.thinking')
    await expect(thinking).to_have_attribute("open", "")
    await expect(thinking.locator("summary")).to_have_text("Thinking…")
    await expect(thinking.locator(".thinking-text")).to_have_text("Let me think <b>about it.")
    await expect(page.locator("#hint")).to_be_hidden()
    await page.evaluate(
        feed,
        [
            {"type": "delta", "message_id": "m-r", "seq": 3, "text": "The **answer**."},
            {"type": "done", "message_id": "m-r", "seq": 3, "finish_reason": "stop"},
        ],
    )
    await expect(thinking).not_to_have_attribute("open", "")
    await expect(thinking.locator("summary")).to_have_text(re.compile(r"Thought for \d+ s"))
    await expect(page.locator('.msg[data-id="m-r"] .body strong')).to_have_text("answer")


@pytest.mark.timeout(60)
async def test_conversation_url_keeps_a_non_default_assistant(gateway, page) -> None:
    """/?assistant=support becomes /c/{id}?assistant=support, and reloading it reopens it."""
    gw = await gateway('[assistants.support]\ntitle = "Support"\n')
    await open_page(page, gw, "/?assistant=support")
    prompt = "support me sim:tokens=5 sim:delay_ms=0"
    await say(page, prompt)
    await expect(page.locator(".msg.assistant").last).to_have_attribute("data-status", "complete")
    conv = await page.evaluate("window.gatewayClient.conversationId")
    assert page.url.endswith(f"/c/{conv}?assistant=support")
    await page.reload()
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    await expect(page.locator(".msg.user .body")).to_have_text([prompt])
    assert await page.evaluate("window.gatewayClient.conversationId") == conv
