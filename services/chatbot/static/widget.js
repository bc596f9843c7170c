/* FinPulse chat widget: one self-contained script, no framework.
 * Embed: <script src="https://bank.example/widget.js" defer></script>
 * Every string from the server or the user is rendered with textContent (never as HTML).
 * Accessible: a labelled dialog, a role="log" aria-live region for replies, native
 * buttons and a form, so it works with the keyboard and screen readers. */
(function () {
  "use strict";
  if (window.FinPulseChat) { return; }
  var script = document.currentScript;
  var base = (script && script.getAttribute("data-endpoint")) ||
    (script && script.src ? new URL(script.src, location.href).origin : location.origin);
  var KEY = "finpulse-chat-session";
  var sessionId = null;
  try { sessionId = sessionStorage.getItem(KEY); } catch (e) { sessionId = null; }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  var css = el("style");
  css.textContent =
    ".fpc-toggle{position:fixed;right:1rem;bottom:1rem;padding:.7rem 1rem;border-radius:2rem;border:0;" +
    "background:#0b5;color:#fff;font:600 1rem sans-serif;cursor:pointer;z-index:2147483000}" +
    ".fpc-panel{position:fixed;right:1rem;bottom:4.5rem;width:22rem;max-width:calc(100vw - 2rem);" +
    "height:28rem;display:flex;flex-direction:column;background:#fff;color:#111;border:1px solid #888;" +
    "border-radius:.6rem;box-shadow:0 4px 20px rgba(0,0,0,.2);font:14px sans-serif;z-index:2147483000}" +
    ".fpc-panel[hidden]{display:none}.fpc-head{padding:.6rem;font-weight:600;border-bottom:1px solid #ddd}" +
    ".fpc-log{flex:1;overflow-y:auto;padding:.6rem}.fpc-msg{margin:.3rem 0;padding:.4rem .6rem;border-radius:.5rem}" +
    ".fpc-user{background:#e8f0fe;margin-left:2rem}.fpc-bot{background:#f1f1f1;margin-right:2rem}" +
    ".fpc-sugg button{display:block;margin:.2rem 0;text-align:left;background:#fff;border:1px solid #0b5;" +
    "border-radius:.4rem;padding:.3rem .5rem;cursor:pointer}.fpc-status{padding:0 .6rem;color:#a40}" +
    ".fpc-form{display:flex;border-top:1px solid #ddd}.fpc-form input{flex:1;padding:.6rem;border:0}" +
    ".fpc-form button{border:0;background:#0b5;color:#fff;padding:0 1rem}" +
    ".fpc-sr{position:absolute;left:-9999px}:focus-visible{outline:3px solid #f90}";
  document.head.appendChild(css);

  var toggle = el("button", {"type": "button", "class": "fpc-toggle", "aria-expanded": "false",
    "aria-controls": "fpc-panel"}, "Chat with us");
  var panel = el("div", {"id": "fpc-panel", "class": "fpc-panel", "role": "dialog",
    "aria-label": "Customer service chat", "hidden": ""});
  var head = el("div", {"class": "fpc-head"}, "Ask us anything");
  var log = el("div", {"class": "fpc-log", "role": "log", "aria-live": "polite", "aria-relevant": "additions",
    "data-testid": "fpc-log"});
  var status = el("div", {"class": "fpc-status", "role": "status", "aria-live": "polite"});
  var form = el("form", {"class": "fpc-form"});
  var label = el("label", {"for": "fpc-input", "class": "fpc-sr"}, "Your question");
  var input = el("input", {"id": "fpc-input", "type": "text", "autocomplete": "off", "maxlength": "1000",
    "placeholder": "Type your question"});
  var send = el("button", {"type": "submit"}, "Send");
  form.appendChild(label); form.appendChild(input); form.appendChild(send);
  panel.appendChild(head); panel.appendChild(log); panel.appendChild(status); panel.appendChild(form);
  document.body.appendChild(toggle); document.body.appendChild(panel);

  function setOpen(open) {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) { input.focus(); } else { toggle.focus(); }
  }
  toggle.addEventListener("click", function () { setOpen(panel.hidden); });
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") { setOpen(false); } });

  function addMessage(who, text) {
    var msg = el("div", {"class": "fpc-msg fpc-" + who});
    msg.appendChild(el("span", {"class": "fpc-sr"}, who === "user" ? "You said: " : "Assistant: "));
    msg.appendChild(document.createTextNode(text));
    log.appendChild(msg);
    log.scrollTop = log.scrollHeight;
    return msg;
  }

  function addSuggestions(sources) {
    var box = el("div", {"class": "fpc-sugg", "role": "group", "aria-label": "Suggested questions"});
    sources.forEach(function (s) {
      var b = el("button", {"type": "button"}, s.question);
      b.addEventListener("click", function () { ask(s.question); });
      box.appendChild(b);
    });
    log.appendChild(box);
  }

  function ask(text) {
    text = (text || "").trim();
    if (!text) { return; }
    addMessage("user", text);
    input.value = "";
    send.disabled = true;
    status.textContent = "Sending…";
    var body = {message: text};
    if (sessionId) { body.session_id = sessionId; }
    fetch(base + "/v1/chat", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, body: j}; }); })
      .then(function (res) {
        if (!res.ok) {
          var err = res.body && res.body.error ? res.body.error.message : "Something went wrong.";
          addMessage("bot", err); status.textContent = ""; return;
        }
        var data = res.body;
        sessionId = data.session_id;
        try { sessionStorage.setItem(KEY, sessionId); } catch (e) { /* private mode */ }
        addMessage("bot", data.answer);
        if (data.kind === "clarify" && data.sources && data.sources.length) { addSuggestions(data.sources); }
        status.textContent = data.handoff ? "A member of our team will take over this chat." : "";
      })
      .catch(function () { addMessage("bot", "The chat is unavailable right now."); status.textContent = ""; })
      .then(function () { send.disabled = false; input.focus(); });
  }
  form.addEventListener("submit", function (ev) { ev.preventDefault(); ask(input.value); });
  window.FinPulseChat = {open: function () { setOpen(true); }, ask: ask};
})();
