/* FinPulse chat widget: one self-contained script, no framework.
 * Embed: <script src="https://bank.example/widget.js" defer></script> (list the embedding
 * site in FINPULSE_CHATBOT_CORS_ORIGINS, or the browser blocks its requests).
 * Every string from the server or the user is rendered with textContent (never as HTML).
 * Bot and agent messages may use a small Markdown subset, built as DOM nodes (see markdown()):
 * paragraphs, line breaks, bullet (-, * or +) and 1. lists, **bold**, *italic* (CommonMark flanking), `code` and links to
 * http(s): or mailto: only; anything else (HTML too) stays literal text.
 * Accessible: a labelled dialog, a role="log" aria-live region for replies, native
 * buttons and a form, so it works with the keyboard and screen readers.
 * A picked suggestion is sent with its entry id (the same question text may belong to
 * two entries). "Not helpful" on the last answer shows the bot's next turn, which the feedback response
 * carries (the topic's other entries, or a hand-off). While a person has the chat (handoff) it polls for the agent's messages,
 * every 3 s at first, slower while nothing comes (up to 15 s) or on errors (up to 60 s); a message the customer
 * sends, or the chat opened again, brings it back to every 3 s (the agent's answer to it comes at once).
 * The status line says the team will take over until an agent has written, then that the agent has the chat.
 * Server error texts are never shown: customers get a plain, friendly message; so does a request
 * left unanswered for ASK_TIMEOUT_MS (15 s), and the question goes back into the input.
 * The conversation shown and the agent-message cursor are kept in sessionStorage with the
 * session id, so a page reload (or the next page of the site) shows the chat as it was.
 * Isolated from the host page: everything (its <style> too) lives in an open shadow root on one
 * <finpulse-chat> element, so the page's CSS (resets, `button{display:none}`, `div{display:flex}`,
 * `[role=dialog]`, `p{margin:3em}`) does not reach it, and its CSS does not reach the page. */
(function () {
  "use strict";
  var script = document.currentScript;
  /* loaded again: one widget only, but a page that replaced <body> (Turbo, pjax, a script rewriting it)
   * gets the same widget (session, conversation) back in the new body */
  if (window.FinPulseChat) {
    if (typeof window.FinPulseChat._attach === "function") { window.FinPulseChat._attach(script && script.nonce); }
    return;
  }
  /* a strict CSP (style-src 'nonce-...'): the widget's <style> carries its own script tag's nonce */
  var nonce = (script && script.nonce) || "";
  var base = (script && script.getAttribute("data-endpoint")) ||
    (script && script.src ? new URL(script.src, location.href).origin : location.origin);
  var KEY = "finpulse-chat-session", HISTORY_KEY = "finpulse-chat-history", CURSOR_KEY = "finpulse-chat-cursor";
  var OPEN_KEY = "finpulse-chat-open", UNREAD_KEY = "finpulse-chat-unread", AGENT_KEY = "finpulse-chat-agent";
  var HISTORY_MAX = 100;  /* bubbles kept for a reload */
  var sessionId = null, shown = [], savedCursor = 0;
  try {
    sessionId = sessionStorage.getItem(KEY);
    shown = sessionId ? JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]") : [];
    savedCursor = sessionId ? parseInt(sessionStorage.getItem(CURSOR_KEY) || "0", 10) || 0 : 0;
  } catch (e) { sessionId = null; shown = []; }
  if (!Array.isArray(shown)) { shown = []; }
  function store(key, value) {
    try { sessionStorage.setItem(key, value); } catch (e) { /* private mode: no reload memory */ }
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  /* The Markdown subset of answers, as DOM nodes: text only ever goes in through textContent
   * or text nodes, so markup that is not in the subset (HTML included) shows as typed. */
  var SAFE_HREF = /^(?:https?:\/\/|mailto:)\S+$/i;
  var INLINE = [  /* [pattern, builder, not inside_a_word]; earliest match wins */
    [/\\([\\`*_\[\]()#+.!-])/g, function (m) { return document.createTextNode(m[1]); }],
    [/`([^`\n]+)`/g, function (m) { return el("code", {}, m[1]); }],
    [/!\[[^\]\n]*\]\([^()\s]*\)/g, function (m) { return document.createTextNode(m[0]); }],  /* images: as typed */
    [/\[([^\]\n]+)\]\(((?:[^()\s]|\([^()\s]*\))+)\)/g, function (m) {
      var a = SAFE_HREF.test(m[2]) ? el("a", {"href": m[2], "target": "_blank", "rel": "noopener noreferrer"})
        : document.createDocumentFragment();  /* javascript:, data:, relative...: the text only */
      inline(a, m[1]);
      return a;
    }],
    [emphasis, function (m) {  /* 1: em, 2: strong, 3: both */
      var outer = el(m.use === 2 ? "strong" : "em"), node = outer;
      if (m.use === 3) { node = outer.appendChild(el("strong")); }
      inline(node, m[1]);
      return outer;
    }]
  ];
  /* Emphasis as CommonMark pairs it: a run of * or _ opens when it is left-flanking (a non-space
   * after it, and no punctuation after it unless space or punctuation is before it), closes when
   * right-flanking (the mirror image); _ neither opens nor closes inside a word. A closer takes the
   * nearest opener of its kind; a marker left without a partner stays literal, so plain-text FAQ
   * answers ("Loan Account No. << >>*** ECS mandate", "1000* ... 500*") keep their asterisks. */
  var PUNCT = /[!-\/:-@\[-`{-~\u00a1-\u00bf\u2010-\u2027\u2030-\u205e]/;
  function isSpace(ch) { return !ch || /\s/.test(ch); }
  function isPunct(ch) { return !!ch && PUNCT.test(ch); }
  function emphasis(text, pos) {
    var re = /\*+|_+/g, m, stack = [], best = null;
    re.lastIndex = pos;
    while ((m = re.exec(text))) {
      var i = m.index, n = m[0].length;
      if (text.charAt(i - 1) === "\\") { i += 1; n -= 1; if (!n) { continue; } }  /* \* is a literal star */
      var c = m[0].charAt(0), before = text.charAt(i - 1), after = text.charAt(i + n);
      var left = !isSpace(after) && (!isPunct(after) || isSpace(before) || isPunct(before));
      var right = !isSpace(before) && (!isPunct(before) || isSpace(after) || isPunct(after));
      var run = {i: i, n: n, c: c, open: c === "*" ? left : left && (!right || isPunct(before)),
                 close: c === "*" ? right : right && (!left || isPunct(after))};
      var k = run.close ? stack.length - 1 : -1;
      for (; k >= 0; k--) {
        var o = stack[k];
        if (o.c === c && !((o.close || run.open) && (o.n + n) % 3 === 0 && (o.n % 3 || n % 3))) { break; }
      }
      if (k >= 0) {
        var op = stack[k], use = Math.min(op.n, n, 3);
        stack.length = k;  /* openers inside the pair are spent */
        if (!best || op.i < best.open) {
          best = {open: op.i, index: op.i + op.n - use, use: use, 0: text.slice(op.i + op.n - use, i + use),
                  1: text.slice(op.i + op.n, i)};
        }
      } else if (run.open) {
        stack.push(run);
      }
    }
    return best;
  }
  function addText(parent, text) {  /* as in Markdown: a line ending in two spaces or "\\" breaks, */
    var lines = text.split("\n");   /* any other newline is a space (FAQ files are often hard-wrapped) */
    lines.forEach(function (line, i) {
      var hard = i < lines.length - 1 && /(?: {2,}|\\)$/.test(line);
      line = hard ? line.replace(/(?: +|\\)$/, "") : line;
      if (line) { parent.appendChild(document.createTextNode(line)); }
      if (hard) { parent.appendChild(el("br")); } else if (i < lines.length - 1) { parent.appendChild(document.createTextNode(" ")); }
    });
  }
  function inline(parent, text) {
    var pos = 0, next = [];  /* next[i]: rule i's first match at or after pos (null: none left) */
    for (;;) {
      var best = -1;
      INLINE.forEach(function (r, i) {
        if (typeof r[0] === "function") {  /* emphasis pairs depend on everything after pos */
          next[i] = r[0](text, pos);
        } else if (next[i] === undefined || (next[i] && next[i].index < pos)) {
          var re = r[0], m;
          re.lastIndex = pos;
          while ((m = re.exec(text)) && r[2] && /[A-Za-z0-9_]/.test(text.charAt(m.index - 1))) {
            re.lastIndex = m.index + 1;
          }
          next[i] = m;
        }
        if (next[i] && (best < 0 || next[i].index < next[best].index)) { best = i; }
      });
      if (best < 0) { break; }
      var m = next[best];
      addText(parent, text.slice(pos, m.index));
      parent.appendChild(INLINE[best][1](m));
      pos = m.index + m[0].length;
    }
    addText(parent, text.slice(pos));
  }
  /* Blocks: paragraphs (blank-line separated) and flat "- ", "* ", "+ " and "1. " lists; the lines
   * after an item continue it. A message that is one paragraph gets no <p> of its own. */
  var ITEM = /^\s*(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/;
  function markdown(parent, text) {
    var blocks = [], open = null, list = null, blank = false;
    function close() {
      if (open) { inline(open.node, open.lines.join("\n")); }
      open = null;
    }
    function start(node, first, into) {
      close();
      if (into) { into.appendChild(node); } else { blocks.push(node); }
      open = {node: node, lines: [first], item: !!into};
    }
    String(text).replace(/\r\n?/g, "\n").split("\n").forEach(function (line) {
      var m = ITEM.exec(line), trimmed = line.trim();
      if (!trimmed) { blank = true; return; }
      /* like CommonMark: "2024. was a good year" inside a paragraph does not start a list */
      if (m && m[2] && parseInt(m[2], 10) !== 1 && open && !open.item && !blank) { m = null; }
      if (m) {
        var tag = m[1] ? "UL" : "OL", n = m[2] ? parseInt(m[2], 10) : 1;
        if (!list || list.tagName !== tag) {  /* "- a\n\n- b" stays one list */
          close();
          list = el(tag.toLowerCase(), n !== 1 ? {"start": String(n)} : {});
          blocks.push(list);
        }
        start(el("li"), m[3], list);
      } else if (open && (!blank || (open.item && /^\s{2,}/.test(line)))) {
        open.lines.push(line.replace(/^\s+/, ""));  /* the paragraph or list item goes on (its end kept: "  " breaks) */
      } else {
        list = null;
        start(el("p"), line.replace(/^\s+/, ""));
      }
      blank = false;
    });
    close();
    if (blocks.length === 1 && blocks[0].tagName === "P") {
      while (blocks[0].firstChild) { parent.appendChild(blocks[0].firstChild); }
    } else {
      blocks.forEach(function (b) { parent.appendChild(b); });
    }
  }

  /* Colours: white on GREEN is 6.6:1 (WCAG AA needs 4.5); FOCUS is 4.6:1 on white (3 needed). */
  var GREEN = "#0a6b3a", FOCUS = "#c25400";
  /* The one element in the host page; the widget is its open shadow root (Playwright, screen
   * readers and the page's own scripts can still see in). The page's selectors do not match inside. */
  var shadowHost = document.createElement("finpulse-chat");
  var root = shadowHost.attachShadow({mode: "open"});
  /* still under the page's style-src: a strict CSP (style-src 'nonce-...') needs the nonce of the
   * widget's own script tag on this <style>, in the shadow root as in <head> */
  var css = el("style", nonce ? {"nonce": nonce} : {});
  css.textContent =
    /* What the shadow host inherits or matches from the page (`body{font-size:0}`, `*{...}`, a
     * `finpulse-chat{display:none}`) is reset: !important in a shadow root's :host wins over the page,
     * even over the page's own !important. Lengths are px: rem follows the page's <html> font-size
     * (the 62.5% and 0 hacks). display:contents: the host makes no box (no cell or gap in a grid or
     * flex <body>). The top z-index: at a tie the later element wins, and this one comes last. */
    ":host{all:initial!important;display:contents!important;font:400 16px/normal sans-serif!important;" +
    "color:#111!important;line-height:normal!important}" +
    ".fpc-toggle{position:fixed;right:16px;bottom:16px;padding:11.2px 16px;border-radius:32px;border:0;" +
    "background:" + GREEN + ";color:#fff;font:600 16px/normal sans-serif;cursor:pointer;z-index:2147483647}" +
    /* never taller than the window above the toggle (200% zoom, a phone held sideways): the log
     * scrolls inside instead of the header going off-screen; dvh leaves out a phone's URL bar */
    ".fpc-panel{position:fixed;right:16px;bottom:72px;width:352px;max-width:calc(100vw - 32px);" +
    "height:448px;max-height:calc(100vh - 88px);max-height:calc(100dvh - 88px);" +
    "display:flex;flex-direction:column;color-scheme:light;background:#fff;color:#111;border:1px solid #888;" +
    "border-radius:9.6px;box-shadow:0 4px 20px rgba(0,0,0,.2);font:14px/normal sans-serif;z-index:2147483647}" +
    ".fpc-panel[hidden]{display:none}.fpc-head{padding:9.6px;font-weight:600;border-bottom:1px solid #ddd}" +
    ".fpc-log{flex:1;min-height:0;overflow-y:auto;padding:9.6px}" +
    ".fpc-msg{margin:4.8px 0;padding:6.4px 9.6px;border-radius:8px;" +
    "overflow-wrap:anywhere}.fpc-sugg button{overflow-wrap:anywhere}" +
    ".fpc-user{background:#e8f0fe;margin-left:32px}.fpc-bot{background:#f1f1f1;margin-right:32px}" +
    ".fpc-agent{background:#fff4d6;margin-right:32px}.fpc-error{background:#fdecea;margin-right:32px}" +
    /* text colours of their own: a dark host page (color-scheme, button{color:#fff}) made them white on white */
    ".fpc-sugg button{display:block;margin:3.2px 0;text-align:left;background:#fff;color:#111;border:1px solid " + GREEN + ";" +
    "border-radius:6.4px;padding:4.8px 8px;cursor:pointer}.fpc-status{padding:0 9.6px;color:#a40}" +
    ".fpc-msg p,.fpc-msg ul,.fpc-msg ol{margin:.4em 0}.fpc-text>:first-child{margin-top:0}" +
    ".fpc-text>:last-child,.fpc-msg>:last-child{margin-bottom:0}.fpc-msg ul,.fpc-msg ol{padding-left:1.3em}" +
    ".fpc-msg a{color:#05a;text-decoration:underline}.fpc-msg code{font-family:monospace;" +
    "background:rgba(0,0,0,.07);padding:0 .2em;border-radius:.2em}" +
    ".fpc-fb{margin-top:4.8px}.fpc-fb button{background:#fff;color:#111;border:1px solid #888;border-radius:6.4px;" +
    "margin-right:4.8px;padding:3.2px 6.4px;cursor:pointer;font-size:14.4px;line-height:0}" +
    ".fpc-fb svg{display:block}.fpc-fb button[aria-pressed=true]{" +
    "border-color:" + GREEN + ";background:#e6f2ec}" +
    ".fpc-form{display:flex;border-top:1px solid #ddd}.fpc-form input{flex:1;padding:9.6px;border:0;background:#fff;color:#111}" +
    ".fpc-form button{border:0;background:" + GREEN + ";color:#fff;padding:0 16px}" +
    ".fpc-sr{position:absolute;left:-9999px}.fpc-toggle:focus-visible,.fpc-panel :focus-visible{" +
    "outline:3px solid " + FOCUS + ";outline-offset:2px}.fpc-form input:focus-visible{outline-offset:-3px}";
  var toggle = el("button", {"type": "button", "class": "fpc-toggle", "aria-expanded": "false",
    "aria-controls": "fpc-panel"}, "Chat with us");
  var panel = el("div", {"id": "fpc-panel", "class": "fpc-panel", "role": "dialog",
    "aria-label": "Customer service chat", "hidden": ""});
  var head = el("div", {"class": "fpc-head"}, "Ask us anything");
  var log = el("div", {"class": "fpc-log", "role": "log", "aria-live": "polite", "aria-relevant": "additions",
    "data-testid": "fpc-log"});
  var status = el("div", {"class": "fpc-status", "role": "status", "aria-live": "polite"});
  /* outside the panel: a live region inside a hidden panel is not read out (an agent's reply to a closed chat);
   * no role of its own, so the chat's status line stays the widget's one role="status" */
  var notice = el("div", {"class": "fpc-sr fpc-notice", "aria-live": "polite", "aria-atomic": "true"});
  var form = el("form", {"class": "fpc-form"});
  var label = el("label", {"for": "fpc-input", "class": "fpc-sr"}, "Your question");
  var INPUT_MAX = 1000;  /* the chatbot serving this file writes its FINPULSE_CHATBOT_MAX_MESSAGE_CHARS here */
  var input = el("input", {"id": "fpc-input", "type": "text", "autocomplete": "off", "maxlength": String(INPUT_MAX),
    "placeholder": "Type your question", "dir": "auto"});
  var send = el("button", {"type": "submit"}, "Send");
  form.appendChild(label); form.appendChild(input); form.appendChild(send);
  panel.appendChild(head); panel.appendChild(log); panel.appendChild(status); panel.appendChild(form);
  root.appendChild(css); root.appendChild(toggle); root.appendChild(notice); root.appendChild(panel);
  /* in the page once <body> is there (a <script> in <head> without defer runs before it), and
   * again after the page replaced <body> (the <style> is checked against the CSP again: its nonce too) */
  function attach(freshNonce) {
    if (!document.body) {
      document.addEventListener("DOMContentLoaded", function () { attach(freshNonce); }, {once: true});
      return;
    }
    if (!shadowHost.isConnected) {
      if (freshNonce) { css.setAttribute("nonce", freshNonce); }
      document.body.appendChild(shadowHost);
    }
  }

  /* QA: an agent's reply to a customer who had closed the chat while waiting went unseen (and unheard):
   * the closed chat's button counts the messages that came meanwhile, and the notice region says so */
  var unread = 0;
  try { unread = parseInt(sessionStorage.getItem(UNREAD_KEY) || "0", 10) || 0; } catch (e) { unread = 0; }
  function setUnread(n) {
    unread = n;
    store(UNREAD_KEY, String(n));
    if (panel.hidden) { toggle.textContent = n ? "Chat with us (" + n + " new)" : "Chat with us"; }
    toggle.classList.toggle("fpc-unread", n > 0);
    notice.textContent = n ? (n === 1 ? "New message from our team in the chat." : n + " new messages from our team in the chat.") : "";
  }
  function setOpen(open, quiet) {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.textContent = open ? "Close chat" : "Chat with us";
    if (open && unread) { setUnread(0); }
    if (open) { hurryPoll(0); }  /* QA: back in the chat, the agent's latest waited up to 15 s (idle poll) */
    store(OPEN_KEY, open ? "1" : "");
    if (quiet) { return; }  /* reopened by a page load: the page keeps its focus */
    if (open) { input.focus(); } else { toggle.focus(); }
  }
  toggle.addEventListener("click", function () { setOpen(panel.hidden); });
  /* maxlength cuts a longer paste without a word: say so in the status region (read out politely) */
  var FULL = INPUT_MAX + "/" + INPUT_MAX + " characters \u2014 the limit: a longer message is shortened to " +
    INPUT_MAX + " characters.";
  input.addEventListener("input", function () {
    if (input.value.length >= INPUT_MAX) { status.textContent = FULL; } else if (status.textContent === FULL) { status.textContent = ""; }
  });
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") { setOpen(false); } });

  var SPEAKER = {user: "You said: ", bot: "Assistant: ", agent: "Agent: ", error: "Assistant: "};
  function addMessage(who, text, replayed, feedback) {
    /* feedback: {entry_id, message} of an answer, which gets thumbs up/down (kept for a reload) */
    var item = feedback ? [who, text, feedback] : [who, text];
    if (replayed && feedback) { item = replayed; }
    if (!replayed && who !== "error") { remember(item); }  /* a stale error is not worth showing again */
    var msg = el("div", {"class": "fpc-msg fpc-" + who});
    msg.appendChild(el("span", {"class": "fpc-sr"}, SPEAKER[who]));
    /* the text in its own direction (dir=auto, isolated): Arabic or Hebrew in an LTR page had its
     * trailing "?" and "(PIN 1234)" on the wrong side; the "You said:" label stays as it is */
    var body = el("div", {"class": "fpc-text", "dir": "auto"});
    /* answers and agent replies may use the Markdown subset; the customer's words and errors never */
    if (who === "bot" || who === "agent") { markdown(body, text); } else { body.appendChild(document.createTextNode(text)); }
    msg.appendChild(body);
    if (who === "bot" && item[2] && item[2].entry_id !== undefined) { addFeedback(msg, item); }
    log.appendChild(msg);
    log.scrollTop = log.scrollHeight;
    return msg;
  }

  /* The thumbs are drawn, not typed: the emoji showed as empty boxes wherever no emoji font is
   * installed (stock Linux desktops, headless Chromium). Material Icons' thumb_up (Apache-2.0);
   * turned half a turn it is their thumb_down. */
  var THUMB = "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 " +
    "1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";
  function thumb(down) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    var path = document.createElementNS(ns, "path");
    [["viewBox", "0 0 24 24"], ["width", "16"], ["height", "16"], ["aria-hidden", "true"], ["focusable", "false"]]
      .forEach(function (a) { svg.setAttribute(a[0], a[1]); });
    path.setAttribute("d", THUMB);
    path.setAttribute("fill", "currentColor");
    if (down) { path.setAttribute("transform", "rotate(180 12 12)"); }
    svg.appendChild(path);
    return svg;
  }

  /* Thumbs up/down under an answer: POST /v1/feedback once, then thanks in the status region.
   * Rated (and kept for a reload) only once the server stored it: a failed post left both thumbs
   * disabled for good, shown as rated. */
  function addFeedback(msg, item) {
    var fb = item[2], pending = false;
    var row = el("div", {"class": "fpc-fb", "role": "group", "aria-label": "Was this answer helpful?"});
    [["up", "Helpful"], ["down", "Not helpful"]].forEach(function (r) {
      var b = el("button", {"type": "button", "aria-label": r[1], "title": r[1],
        "aria-pressed": fb.rated === r[0] ? "true" : "false"});
      b.appendChild(thumb(r[0] === "down"));
      b.disabled = !!fb.rated;
      b.addEventListener("click", function () {
        if (fb.rated || pending) { return; }
        pending = true;
        b.setAttribute("aria-pressed", "true");
        var body = {session_id: sessionId, rating: r[0], entry_id: fb.entry_id};
        if (fb.message) { body.message = fb.message; }
        function unsaved() {
          pending = false;
          b.setAttribute("aria-pressed", "false");
          status.textContent = "Sorry, we couldn't save your feedback.";
        }
        fetch(base + "/v1/feedback", {method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify(body)})
          .then(function (res) {
            if (!res.ok) { unsaved(); return; }
            fb.rated = r[0];
            store(HISTORY_KEY, JSON.stringify(shown));
            /* a disabled button drops the focus to <body>, where Escape no longer closes the chat */
            if (row.contains(root.activeElement)) { input.focus(); }
            Array.prototype.forEach.call(row.querySelectorAll("button"), function (x) { x.disabled = true; });
            status.textContent = "Thanks for your feedback.";
            /* QA: "Not helpful" changed nothing. On the last answer the server answers it as "that didn't
             * help": its turn (the topic's other entries, or a hand-off) shows as the bot's next message */
            return res.json().then(function (data) {
              if (data && data.reply && typeof data.reply === "object") { showReply(data.reply, fb.message, true); }
            }, function () { /* stored; no follow-up to show */ });
          })
          .catch(unsaved);
      });
      row.appendChild(b);
    });
    msg.appendChild(row);
  }

  function remember(item) {
    shown.push(item);
    shown = shown.slice(-HISTORY_MAX);
    store(HISTORY_KEY, JSON.stringify(shown));
  }
  function addSuggestions(sources, replayed, spent) {
    if (!replayed) {
      remember(["sugg", sources.map(function (s) {
        return typeof s.label === "string" ? {id: s.id, question: s.question, label: s.label} : {id: s.id, question: s.question};
      })]);
    }
    var box = el("div", {"class": "fpc-sugg", "role": "group", "aria-label": "Suggested questions"});
    sources.forEach(function (s) {
      /* the label tells apart entries that share a question (one per card); the pick goes by id */
      var b = el("button", {"type": "button"}, typeof s.label === "string" && s.label ? s.label : s.question);
      b.addEventListener("click", function () {
        /* QA: a pick made with the keyboard disabled the focused button, which dropped the focus to <body>
         * (Escape no longer closed the chat, a screen reader went back to the page's top): to the input */
        if (box.contains(root.activeElement)) { input.focus(); }
        /* one pick per offer: a second click would ask again; the pick stays marked */
        Array.prototype.forEach.call(box.querySelectorAll("button"), function (x) { x.disabled = true; });
        b.setAttribute("aria-pressed", "true");
        ask(s.question, s.id);
      });
      b.disabled = !!spent;  /* replayed after a later turn: that offer has passed */
      box.appendChild(b);
    });
    log.appendChild(box);
    log.scrollTop = log.scrollHeight;
  }

  /* What a customer reads for a failed request: never the server's own error text. */
  function friendlyError(status) {
    if (status === 429) { return "You're sending messages quickly \u2014 please wait a moment."; }
    if (status === 413) { return "That message is too long \u2014 please make it shorter."; }
    if (status >= 500 || status === 0) { return "The chat is unavailable right now. Please try again in a moment."; }
    return "Sorry, something went wrong. Please try again.";
  }

  /* Handoff: poll for the agent's messages after a cursor, backing off while idle or failing. */
  var POLL_MIN = 3000, POLL_IDLE_MAX = 15000, POLL_ERROR_MAX = 60000;
  var cursor = savedCursor, pollDelay = POLL_MIN, pollTimer = null, handedOff = false, polling = false;
  var inFlight = false, hurried = false;
  /* QA: the status line said the team "will take over" after the agent had written: which it is, kept for a reload */
  var WAITING = "A member of our team will take over this chat.";
  var WITH_AGENT = "A member of our team has this chat and will answer you here.";
  var agentWrote = false;
  try { agentWrote = !!sessionId && sessionStorage.getItem(AGENT_KEY) === "1"; } catch (e) { agentWrote = false; }
  function setAgentWrote(wrote) {
    agentWrote = wrote;
    store(AGENT_KEY, wrote ? "1" : "");
  }
  function handoffStatus() { return agentWrote ? WITH_AGENT : WAITING; }
  function schedulePoll(delay) {
    if (pollTimer) { clearTimeout(pollTimer); }
    pollTimer = setTimeout(poll, delay);
  }
  /* QA: after a quiet spell the poll had slowed to 15 s, and the customer's next message (or coming back to the
   * chat) left it there, so the agent's instant answer took up to 15 s to show: back to the fast interval
   * (a poll on its way ends with the fast interval too) */
  function hurryPoll(delay) {
    if (!polling) { return; }
    pollDelay = POLL_MIN;
    if (inFlight) { hurried = true; } else { schedulePoll(delay); }
  }
  function startPolling() {
    handedOff = true;
    if (!polling) { polling = true; pollDelay = POLL_MIN; schedulePoll(pollDelay); } else { hurryPoll(POLL_MIN); }
  }
  function stopPolling() {
    polling = false;
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
  }
  function poll() {
    pollTimer = null;
    if (!sessionId || !polling) { return; }
    if (document.hidden) { schedulePoll(pollDelay); return; }  /* resumes on visibilitychange */
    inFlight = true; hurried = false;
    fetch(base + "/v1/chat/" + encodeURIComponent(sessionId) + "/messages?after=" + cursor)
      .then(function (r) {
        if (!r.ok) {
          var wait = parseInt(r.headers.get("Retry-After") || "", 10) * 1000;
          pollDelay = Math.min(POLL_ERROR_MAX, Math.max(pollDelay * 2, wait || 0));
          return null;
        }
        return r.json();
      })
      .then(function (data) {
        if (!data) { return; }
        var fresh = data.messages || [];
        fresh.forEach(function (m) { addMessage("agent", m.text); });
        if (fresh.length && panel.hidden) { setUnread(unread + fresh.length); }
        cursor = data.cursor || cursor;
        store(CURSOR_KEY, String(cursor));
        if (fresh.length && data.handoff) {
          setAgentWrote(true);
          /* not over a line of its own ("Thanks for your feedback", the answer on its way) */
          if (!status.textContent || status.textContent === WAITING) { status.textContent = WITH_AGENT; }
        }
        if (data.handoff && !handedOff) { status.textContent = handoffStatus(); }
        if (data.handoff) { handedOff = true; }
        pollDelay = fresh.length ? POLL_MIN : Math.min(POLL_IDLE_MAX, pollDelay * 1.5);
        if (!data.handoff) {
          if (handedOff) { status.textContent = "You're chatting with our assistant again."; }
          handedOff = false;
          setAgentWrote(false);
          stopPolling();
        }
      })
      .catch(function () { pollDelay = Math.min(POLL_ERROR_MAX, pollDelay * 2); })
      .then(function () {
        inFlight = false;
        if (hurried) { hurried = false; pollDelay = POLL_MIN; }
        if (polling) { schedulePoll(pollDelay); }
      });
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && polling) { pollDelay = POLL_MIN; schedulePoll(0); }
  });

  /* The bot's turn (a /v1/chat answer, or the one a thumbs-down brought): its message, its suggestions,
   * the hand-off. ``question``: what the customer asked, sent with a rating of this answer.
   * ``keepStatus``: a turn with no hand-off leaves the status line ("Thanks for your feedback") as it is. */
  function showReply(data, question, keepStatus) {
    var top = data.kind === "answer" && data.sources && data.sources[0];
    /* an answer from the knowledge base can be rated; small talk, clarify and handoff cannot */
    if (data.answer) { addMessage("bot", data.answer, false, top ? {entry_id: top.id, message: question} : null); }
    if (data.kind === "clarify" && data.sources && data.sources.length) { addSuggestions(data.sources); }
    /* a new hand-off waits for an agent; a turn after it (silent) keeps whichever stage it is in */
    if (data.kind === "handoff" || !data.handoff) { setAgentWrote(false); }
    if (data.handoff) { status.textContent = handoffStatus(); }
    else if (!keepStatus) { status.textContent = ""; }
    if (data.handoff) { startPolling(); }
  }

  /* A request the server never answers (paused, a dead proxy) ends like any failure after this long. */
  var ASK_TIMEOUT_MS = 15000;
  function ask(text, entryId) {
    text = (text || "").trim();
    if (!text) { return; }
    addMessage("user", text);
    var sent = shown[shown.length - 1];  /* its entry in the history kept for a reload */
    input.value = "";
    send.disabled = true;
    log.setAttribute("aria-busy", "true");
    status.textContent = "The assistant is answering…";
    function failed(code) {
      /* QA: the server never got it, and the error is not kept: after a reload the question read as sent
       * and unanswered (twice, once sent again). It stays on screen above the error, and in the input */
      var at = shown.lastIndexOf(sent);
      if (at >= 0) { shown.splice(at, 1); store(HISTORY_KEY, JSON.stringify(shown)); }
      addMessage("error", friendlyError(code));
      status.textContent = "";
      if (!input.value) { input.value = text; }  /* to edit or send again, not to type again */
    }
    var body = {message: text};
    if (sessionId) { body.session_id = sessionId; }
    /* an integer id 0 is an id: `if (entryId)` sent the pick as a retyped question, "Did you mean" again */
    if (entryId !== undefined && entryId !== null) { body.entry_id = entryId; }
    var abort = new AbortController(), timer = setTimeout(function () { abort.abort(); }, ASK_TIMEOUT_MS);
    fetch(base + "/v1/chat", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body), signal: abort.signal})
      .then(function (r) {
        if (!r.ok) { return {ok: false, status: r.status}; }
        return r.json().then(function (j) { return {ok: true, body: j}; });
      })
      .then(function (res) {
        if (!res.ok) { failed(res.status); return; }
        var data = res.body;
        if (!data || typeof data.session_id !== "string") { failed(500); return; }
        sessionId = data.session_id;
        store(KEY, sessionId);
        showReply(data, text);
      })
      .catch(function () { failed(0); })  /* no answer, or none within ASK_TIMEOUT_MS */
      .then(function () {
        clearTimeout(timer);
        send.disabled = false; log.removeAttribute("aria-busy");
        /* back to the input only if the customer is still in the chat: not from the host page's own fields
         * (the page sees the shadow host as its active element; the shadow root knows which one inside) */
        var active = document.activeElement, inside = root.activeElement;
        if (!active || active === document.body || (active === shadowHost && (!inside || panel.contains(inside)))) {
          input.focus();
        }
      });
  }
  form.addEventListener("submit", function (ev) { ev.preventDefault(); ask(input.value); });
  window.FinPulseChat = {open: function () { setOpen(true); }, ask: ask, _attach: attach};
  attach();
  /* A page reload: show the conversation again, and in a handoff pick the agent's side up again. */
  shown.forEach(function (m, i) {
    if (!Array.isArray(m)) { return; }
    if (m[0] === "sugg" && Array.isArray(m[1])) {
      addSuggestions(m[1].filter(function (s) { return s && typeof s.question === "string"; }), true,
                     i < shown.length - 1);
    } else if (SPEAKER.hasOwnProperty(m[0]) && typeof m[1] === "string") {
      var fb = m[0] === "bot" && m[2] && typeof m[2] === "object" ? m : null;
      addMessage(m[0], m[1], fb || true, !!fb);
    }
  });
  if (sessionId) { polling = true; schedulePoll(0); }
  try { if (sessionId && sessionStorage.getItem(OPEN_KEY)) { setOpen(true, true); } } catch (e) { /* no storage */ }
  if (panel.hidden && unread) { setUnread(unread); }  /* a reload keeps the count of the closed chat */
})();
