/*! Frontdesk web-chat widget — protocol v1 (docs/architecture/webchat-protocol.md).
 *
 * Embed with:
 *   <script src="https://desk.example.com/widget.js" data-inbox="PUBLIC_TOKEN" async></script>
 *
 * Plain JavaScript, no dependencies, no build step. The widget is a Web Component with an open
 * shadow root, so the host page's CSS cannot reach inside it. Everything that comes from the
 * network or the visitor is put on the page with textContent / DOM APIs; agent HTML goes through
 * a small allow-list DOM builder (never innerHTML).
 */
(function () {
  "use strict";

  if (window.__frontdeskWidget) return; // loaded twice on the same page
  var script =
    document.currentScript ||
    document.querySelector("script[data-inbox][src*='widget.js']") ||
    document.querySelector("script[data-inbox]");
  if (!script || !script.getAttribute("data-inbox")) {
    console.error("[frontdesk] widget.js needs a data-inbox attribute on its <script> tag");
    return;
  }
  window.__frontdeskWidget = true;

  // ---------------------------------------------------------------------------------------------
  // Configuration from the <script> tag
  // ---------------------------------------------------------------------------------------------
  var INBOX = script.getAttribute("data-inbox");
  var BASE = new URL(".", new URL(script.getAttribute("src") || script.src, location.href)).href; // ends in "/"
  var WS_BASE = BASE.replace(/^http/, "ws");
  // The visitor's language: the site's data-locale, else the browser's. The widget's own strings
  // exist in English and Russian; the inbox's title and greeting may exist in any language.
  var VISITOR_LANG = languageTag(script.getAttribute("data-locale")) || languageTag(navigator.language);
  var LOCALE = pickLocale(VISITOR_LANG || "en");
  var SOUND = (script.getAttribute("data-sound") || "on") !== "off";
  var KEY = "frontdesk:" + INBOX + ":";
  var DEFAULT_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"];
  var MAX_TEXT = 10000; // characters (Unicode code points, as the server counts them) per message
  var NEAR_LIMIT = 1000; // the counter shows when this few are left
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 15000;
  var PING_MS = 25000;
  var RESEND_AFTER_MS = 10000;

  function pickLocale(tag) {
    return String(tag).toLowerCase().indexOf("ru") === 0 ? "ru" : "en";
  }
  function languageTag(tag) {
    var s = String(tag || "").trim();
    return /^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$/.test(s) ? s : "";
  }

  // ---------------------------------------------------------------------------------------------
  // Strings
  // ---------------------------------------------------------------------------------------------
  var STRINGS = {
    en: {
      open_chat: "Open chat",
      open_chat_unread: "Open chat, {n} new",
      close_chat: "Close chat",
      title: "Chat with us",
      greeting: "Hi! How can we help?",
      close: "Close",
      message_label: "Message",
      placeholder: "Type a message…",
      send: "Send",
      attach: "Attach an image or PDF",
      remove: "Remove {name}",
      can_do: "Write to us here: text and emoji",
      can_do_files: ", images and PDF files up to {mb} MB",
      reply_soon: "We usually reply in a few minutes.",
      away: "We're away right now — we'll answer by email.",
      away_at: "We're away right now — we'll answer by email at {email}.",
      back_at: "We're back {when}.",
      ask_email: "Leave your email so we can reply:",
      email: "Email",
      name: "Name",
      optional: "(optional)",
      save: "Save",
      email_saved: "Thanks! We'll reply to {email}.",
      email_invalid: "Please enter a valid email address.",
      prechat_intro: "Before we start, tell us how to reach you.",
      start_chat: "Start chat",
      sending: "Sending…",
      sent: "Sent",
      seen: "Seen",
      not_sent: "Not sent",
      retry: "Retry",
      typing: "{name} is typing…",
      someone_typing: "Typing…",
      connecting: "Connecting…",
      reconnecting: "Offline — reconnecting. Your messages are kept and will be sent.",
      online: "Online",
      away_short: "Away — we reply by email",
      rate_limited: "You're sending messages quickly — we'll send the rest in a moment.",
      too_large: "“{name}” is larger than {mb} MB.",
      bad_type: "“{name}” can't be sent: only images and PDF files.",
      upload_failed: "Couldn't upload “{name}”: {reason}",
      uploading: "Uploading {name}… {pct}%",
      accept: "Yes, please",
      decline: "No, thanks",
      accepted: "You accepted.",
      declined: "You declined.",
      you: "You",
      support: "Support",
      dismiss: "Dismiss",
      unavailable: "The chat is unavailable right now.",
      attachment: "Attachment",
      chars_left: "{n} characters left",
      chars_over: "{n} characters too many (the limit is {max})",
      too_long: "This message is too long to send as one message: shorten it, or send it as {parts} messages.",
      send_parts: "Send as {parts} messages",
      server_too_long: "longer than the limit of {max} characters",
      edit: "Edit",
      confirm_sent: "We sent a link to {email} to confirm it's you. Open it to see your earlier conversations here.",
      confirm_again: "Send the link again",
      confirm_wait: "We can't send another link to {email} yet; try again later.",
      confirm_done: "Thank you, {email} is confirmed.",
    },
    ru: {
      open_chat: "Открыть чат",
      open_chat_unread: "Открыть чат, новых: {n}",
      close_chat: "Закрыть чат",
      title: "Напишите нам",
      greeting: "Здравствуйте! Чем можем помочь?",
      close: "Закрыть",
      message_label: "Сообщение",
      placeholder: "Напишите сообщение…",
      send: "Отправить",
      attach: "Прикрепить изображение или PDF",
      remove: "Убрать {name}",
      can_do: "Пишите нам здесь: текст и эмодзи",
      can_do_files: ", изображения и PDF до {mb} МБ",
      reply_soon: "Обычно мы отвечаем в течение нескольких минут.",
      away: "Сейчас нас нет на месте — ответим по электронной почте.",
      away_at: "Сейчас нас нет на месте — ответим по почте на {email}.",
      back_at: "Вернёмся {when}.",
      ask_email: "Оставьте адрес почты, чтобы мы могли ответить:",
      email: "Электронная почта",
      name: "Имя",
      optional: "(необязательно)",
      save: "Сохранить",
      email_saved: "Спасибо! Ответим на {email}.",
      email_invalid: "Введите правильный адрес почты.",
      prechat_intro: "Прежде чем начать, расскажите, как с вами связаться.",
      start_chat: "Начать чат",
      sending: "Отправляется…",
      sent: "Отправлено",
      seen: "Прочитано",
      not_sent: "Не отправлено",
      retry: "Повторить",
      typing: "{name} печатает…",
      someone_typing: "Печатает…",
      connecting: "Подключение…",
      reconnecting: "Нет связи — переподключаемся. Ваши сообщения сохранены и будут отправлены.",
      online: "В сети",
      away_short: "Нет на месте — ответим по почте",
      rate_limited: "Вы пишете очень быстро — остальное отправим через минуту.",
      too_large: "«{name}» больше {mb} МБ.",
      bad_type: "«{name}» нельзя отправить: только изображения и PDF.",
      upload_failed: "Не удалось загрузить «{name}»: {reason}",
      uploading: "Загружается {name}… {pct}%",
      accept: "Да",
      decline: "Нет, спасибо",
      accepted: "Вы согласились.",
      declined: "Вы отказались.",
      you: "Вы",
      support: "Поддержка",
      dismiss: "Скрыть",
      unavailable: "Чат сейчас недоступен.",
      attachment: "Вложение",
      chars_left: "Осталось символов: {n}",
      chars_over: "Лишних символов: {n} (предел — {max})",
      too_long: "Сообщение слишком длинное, чтобы отправить его одним: сократите его или отправьте {parts} сообщениями.",
      send_parts: "Отправить {parts} сообщениями",
      server_too_long: "длиннее предела в {max} символов",
      edit: "Изменить",
      confirm_sent: "Мы отправили ссылку на {email}, чтобы убедиться, что это вы. Откройте её — и здесь появятся ваши прежние обращения.",
      confirm_again: "Отправить ссылку ещё раз",
      confirm_wait: "Пока не можем отправить новую ссылку на {email}; попробуйте позже.",
      confirm_done: "Спасибо, адрес {email} подтверждён.",
    },
  };

  function t(key, vars) {
    var s = (STRINGS[LOCALE] && STRINGS[LOCALE][key]) || STRINGS.en[key] || key;
    if (vars) {
      s = s.replace(/\{(\w+)\}/g, function (m, name) {
        return vars[name] == null ? m : String(vars[name]);
      });
    }
    return s;
  }

  // ---------------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------------
  var store = {
    get: function (k, fallback) {
      try {
        var v = localStorage.getItem(KEY + k);
        return v == null ? fallback : JSON.parse(v);
      } catch (e) {
        return fallback;
      }
    },
    set: function (k, v) {
      try {
        if (v == null) localStorage.removeItem(KEY + k);
        else localStorage.setItem(KEY + k, JSON.stringify(v));
      } catch (e) {
        /* storage full or disabled: the widget still works for this page */
      }
    },
  };
  // The visitor token is stored as a plain string under the key the protocol names.
  function loadToken() {
    try {
      return localStorage.getItem(KEY + "visitor");
    } catch (e) {
      return null;
    }
  }
  function saveToken(tok) {
    try {
      localStorage.setItem(KEY + "visitor", tok);
    } catch (e) {
      /* ignore */
    }
  }

  function uuid() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map
      .call(b, function (x) {
        return (x + 0x100).toString(16).slice(1);
      })
      .join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function h(tag, props) {
    var el = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (k) {
        var v = props[k];
        if (v == null || v === false) return;
        if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else if (k === "hidden") el.hidden = true;
        else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? "" : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, kid) {
    if (kid == null || kid === false) return;
    if (Array.isArray(kid)) kid.forEach(function (k) { append(el, k); });
    else el.append(kid); // strings become Text nodes
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  function icon(d, size) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size || 24));
    svg.setAttribute("height", String(size || 24));
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }
  var ICON_CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z";
  var ICON_CLOSE = "M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7 4.3 4.3l6.3 6.3 6.3-6.3z";
  var ICON_CLIP =
    "M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z";
  var ICON_SEND = "M2 21 23 12 2 3v7l15 2-15 2z";

  function time(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return "";
    return d.toLocaleTimeString(LOCALE, { hour: "2-digit", minute: "2-digit" });
  }
  function when(iso) {
    var d = new Date(iso);
    if (isNaN(d)) return "";
    return d.toLocaleString(LOCALE, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  }
  function ts(iso) {
    var n = Date.parse(iso);
    return isNaN(n) ? Date.now() : n;
  }
  function safeUrl(u) {
    try {
      var url = new URL(u, BASE);
      return url.protocol === "https:" || url.protocol === "http:" || url.protocol === "mailto:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }
  function num(n) {
    return Number(n).toLocaleString(LOCALE);
  }
  function trim(text) {
    return String(text).replace(/^\s+|\s+$/g, "");
  }
  // Characters as the server counts them (code points: an emoji is one, not two UTF-16 units).
  function charCount(text) {
    return Array.from(text).length;
  }
  // A text over the limit as parts of at most `max` characters, cut at a line break or a space
  // near the end of each part when there is one (never inside a character).
  function splitText(text, max) {
    var chars = Array.from(text);
    var parts = [];
    var floor = Math.floor(max * 0.8);
    while (chars.length > max) {
      var cut = max;
      for (var i = max; i > floor; i--) {
        if (chars[i] === "\n") { cut = i; break; }
      }
      if (cut === max && !/\s/.test(chars[max])) {
        for (var j = max - 1; j > floor; j--) {
          if (/\s/.test(chars[j])) { cut = j; break; }
        }
      }
      var part = trim(chars.slice(0, cut).join(""));
      if (part) parts.push(part);
      chars = Array.from(trim(chars.slice(cut).join("")));
    }
    if (chars.length) parts.push(chars.join(""));
    return parts;
  }
  function str(v, max) {
    return typeof v === "string" ? v.slice(0, max || 500) : v == null ? undefined : String(v).slice(0, max || 500);
  }

  // Agent HTML (already sanitised by the server) rebuilt from an allow-list: anything else is text.
  var KEEP = { P: 1, BR: 1, B: 1, STRONG: 1, I: 1, EM: 1, U: 1, S: 1, A: 1, UL: 1, OL: 1, LI: 1, CODE: 1, PRE: 1, BLOCKQUOTE: 1 };
  var AS_PARAGRAPH = { DIV: 1, H1: 1, H2: 1, H3: 1, H4: 1, H5: 1, H6: 1, SECTION: 1, ARTICLE: 1, TR: 1 };
  var DROP = { SCRIPT: 1, STYLE: 1, TEMPLATE: 1, IFRAME: 1, OBJECT: 1, EMBED: 1, NOSCRIPT: 1, HEAD: 1, TITLE: 1 };
  function safeHtml(html) {
    var frag = document.createDocumentFragment();
    var doc = new DOMParser().parseFromString(String(html), "text/html"); // inert: nothing runs or loads
    (function walk(src, dst) {
      src.childNodes.forEach(function (n) {
        if (n.nodeType === 3) {
          dst.append(document.createTextNode(n.nodeValue));
        } else if (n.nodeType === 1) {
          var tag = n.tagName;
          if (DROP[tag]) return;
          if (KEEP[tag] || AS_PARAGRAPH[tag]) {
            var el = document.createElement(KEEP[tag] ? tag.toLowerCase() : "p");
            if (tag === "A") {
              var href = safeUrl(n.getAttribute("href") || "");
              if (href) {
                el.setAttribute("href", href);
                el.setAttribute("target", "_blank");
                el.setAttribute("rel", "noopener noreferrer nofollow");
              }
            }
            walk(n, el);
            dst.append(el);
          } else {
            walk(n, dst);
          }
        }
      });
    })(doc.body, frag);
    return frag;
  }

  // ---------------------------------------------------------------------------------------------
  // Sound: a short two-note chime made with WebAudio (no file to fetch)
  // ---------------------------------------------------------------------------------------------
  var audio = null;
  function unlockAudio() {
    if (!SOUND) return;
    try {
      if (!audio) {
        var AC = window.AudioContext || window.webkitAudioContext;
        if (!AC) return;
        audio = new AC();
      }
      if (audio.state === "suspended") audio.resume().catch(function () {});
    } catch (e) {
      audio = null;
    }
  }
  function chime() {
    if (!SOUND || !audio || audio.state !== "running") return;
    var now = audio.currentTime;
    [880, 1318.5].forEach(function (freq, i) {
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      var start = now + i * 0.12;
      osc.type = "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.08, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.3);
      osc.connect(gain).connect(audio.destination);
      osc.start(start);
      osc.stop(start + 0.32);
    });
  }
  ["pointerdown", "keydown", "touchstart"].forEach(function (ev) {
    document.addEventListener(ev, unlockAudio, { capture: true, passive: true });
  });

  // ---------------------------------------------------------------------------------------------
  // Styles (inside the shadow root only)
  // ---------------------------------------------------------------------------------------------
  var CSS = [
    ":host{all:initial;position:fixed!important;right:0;bottom:0;z-index:2147483000;}",
    ".fd{--fd-accent:#2563eb;--fd-on-accent:#fff;--fd-bg:#fff;--fd-fg:#111827;--fd-muted:#6b7280;--fd-line:#e5e7eb;",
    "font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','Helvetica Neue',Arial,'Apple Color Emoji','Segoe UI Emoji','Noto Color Emoji',sans-serif;",
    "color:var(--fd-fg);letter-spacing:normal;text-align:left;text-transform:none;box-sizing:border-box;}",
    ".fd *,.fd *::before,.fd *::after{box-sizing:border-box;font:inherit;letter-spacing:inherit;}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;}",
    "[hidden]{display:none!important;}",
    "button{cursor:pointer;border:0;background:none;color:inherit;padding:0;margin:0;}",
    "button:focus-visible,textarea:focus-visible,input:focus-visible,a:focus-visible{outline:3px solid #f59e0b;outline-offset:2px;}",
    ".launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;background:var(--fd-accent);",
    "color:var(--fd-on-accent);display:flex;align-items:center;justify-content:center;box-shadow:0 6px 20px rgba(0,0,0,.25);}",
    ".launcher:hover{filter:brightness(1.08);}",
    ".badge{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#dc2626;",
    "color:#fff;font-size:12px;font-weight:700;line-height:22px;text-align:center;border:2px solid #fff;}",
    ".teaser{position:fixed;right:20px;bottom:88px;max-width:300px;background:var(--fd-bg);border:1px solid var(--fd-line);",
    "border-radius:12px;box-shadow:0 6px 24px rgba(0,0,0,.18);padding:12px 34px 12px 14px;}",
    ".teaser .open-teaser{display:block;text-align:left;width:100%;}",
    ".teaser .who{font-weight:600;display:block;margin-bottom:2px;}",
    ".teaser .x{position:absolute;top:6px;right:6px;width:24px;height:24px;border-radius:50%;color:var(--fd-muted);display:flex;align-items:center;justify-content:center;}",
    ".panel{position:fixed;right:20px;bottom:88px;width:370px;max-width:calc(100vw - 24px);height:560px;max-height:calc(100vh - 108px);",
    "background:var(--fd-bg);border-radius:14px;box-shadow:0 12px 40px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden;}",
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;max-width:100vw;height:100vh;max-height:100vh;border-radius:0;}}",
    "header{background:var(--fd-accent);color:var(--fd-on-accent);padding:12px 12px 12px 16px;display:flex;align-items:center;gap:8px;}",
    "header .titles{flex:1;min-width:0;}",
    "header h2{margin:0;font-size:16px;font-weight:650;line-height:1.3;}",
    "header .status{font-size:12px;opacity:.9;display:block;}",
    "header .close{width:32px;height:32px;border-radius:50%;display:flex;align-items:center;justify-content:center;}",
    ".conn{background:#fef3c7;color:#92400e;font-size:12px;padding:6px 12px;}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f9fafb;}",
    ".intro{background:var(--fd-bg);border:1px solid var(--fd-line);border-radius:10px;padding:10px 12px;color:var(--fd-fg);}",
    ".intro p{margin:0 0 6px;}.intro p:last-child{margin:0;}",
    ".intro .greeting{font-weight:600;}",
    ".confirm-note .linkish{text-decoration:underline;font-weight:600;}",
    ".inline-form{display:flex;gap:6px;margin-top:6px;flex-wrap:wrap;}",
    ".inline-form input{flex:1;min-width:140px;}",
    "input[type=text],input[type=email]{border:1px solid #d1d5db;border-radius:8px;padding:7px 9px;background:#fff;color:var(--fd-fg);width:100%;}",
    ".btn{background:var(--fd-accent);color:var(--fd-on-accent);border-radius:8px;padding:7px 12px;font-weight:600;}",
    ".btn.secondary{background:#e5e7eb;color:var(--fd-fg);}",
    ".btn:disabled{opacity:.5;cursor:default;}",
    ".msg{display:flex;flex-direction:column;max-width:82%;}",
    ".msg.in{align-self:flex-end;align-items:flex-end;}",
    ".msg.out{align-self:flex-start;align-items:flex-start;}",
    ".msg.notice{align-self:center;max-width:92%;align-items:center;}",
    ".msg.offer{align-self:stretch;max-width:100%;}",
    ".author{font-size:12px;color:var(--fd-muted);margin:0 4px 2px;}",
    ".bubble{padding:8px 11px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word;}",
    ".in .bubble{background:var(--fd-accent);color:var(--fd-on-accent);border-bottom-right-radius:4px;}",
    ".in .bubble a{color:inherit;}",
    ".out .bubble{background:#fff;border:1px solid var(--fd-line);border-bottom-left-radius:4px;}",
    ".out .bubble.html{white-space:normal;}",
    ".bubble p{margin:0 0 6px;}.bubble p:last-child{margin:0;}",
    ".bubble ul,.bubble ol{margin:4px 0;padding-left:20px;}",
    ".bubble pre{white-space:pre-wrap;margin:4px 0;}",
    ".bubble blockquote{margin:4px 0;padding-left:8px;border-left:3px solid var(--fd-line);color:var(--fd-muted);}",
    ".notice .bubble{background:#eef2ff;color:#3730a3;text-align:center;border-radius:10px;}",
    ".card{background:#fff;border:1px solid var(--fd-line);border-left:4px solid var(--fd-accent);border-radius:10px;padding:10px 12px;}",
    ".card .offer-title{font-weight:650;margin:0 0 4px;}",
    ".card .offer-body{margin:0 0 8px;white-space:pre-wrap;}",
    ".card .actions{display:flex;gap:8px;flex-wrap:wrap;}",
    ".card .answer{color:var(--fd-muted);font-size:13px;}",
    ".meta{font-size:11px;color:var(--fd-muted);margin:2px 4px 0;display:flex;gap:6px;align-items:center;}",
    ".failed .meta .state{color:#b91c1c;font-weight:600;}",
    ".failed .bubble{opacity:.75;}",
    ".link{color:var(--fd-accent);text-decoration:underline;font-size:11px;}",
    ".atts{display:flex;flex-direction:column;gap:4px;margin-top:4px;}",
    ".atts img{max-width:220px;max-height:200px;border-radius:8px;display:block;}",
    ".atts a{color:inherit;}",
    ".typing{font-size:12px;color:var(--fd-muted);padding:2px 14px;min-height:18px;background:#f9fafb;}",
    ".alert{font-size:13px;color:#b91c1c;background:#fef2f2;padding:6px 12px;}",
    ".limit{display:flex;align-items:center;justify-content:flex-end;gap:8px;font-size:12px;color:var(--fd-muted);padding:4px 12px 0;}",
    ".limit.over{color:#b91c1c;}",
    ".limit .split{white-space:nowrap;flex:none;}",
    ".limit[hidden]{display:none;}",
    ".staged{display:flex;flex-wrap:wrap;gap:6px;padding:6px 10px 0;}",
    ".chip{display:flex;align-items:center;gap:6px;background:#f3f4f6;border-radius:8px;padding:4px 8px;font-size:12px;max-width:100%;}",
    ".chip .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:200px;}",
    ".chip progress{width:80px;height:6px;}",
    ".chip button{width:20px;height:20px;border-radius:50%;display:flex;align-items:center;justify-content:center;}",
    ".prechat{padding:12px;display:flex;flex-direction:column;gap:8px;border-top:1px solid var(--fd-line);}",
    ".prechat label{font-size:12px;color:var(--fd-muted);display:flex;flex-direction:column;gap:3px;}",
    ".composer{display:flex;align-items:flex-end;gap:6px;padding:8px 10px;border-top:1px solid var(--fd-line);background:var(--fd-bg);}",
    ".composer textarea{flex:1;resize:none;border:1px solid #d1d5db;border-radius:10px;padding:8px 10px;max-height:120px;min-height:38px;",
    "background:#fff;color:var(--fd-fg);line-height:1.4;}",
    ".composer .attach,.composer .send{width:38px;height:38px;border-radius:50%;display:flex;align-items:center;justify-content:center;flex:none;}",
    ".composer .attach{color:var(--fd-muted);}",
    ".composer .send{background:var(--fd-accent);color:var(--fd-on-accent);}",
    ".composer .send:disabled{opacity:.5;cursor:default;}",
  ].join("\n");

  // ---------------------------------------------------------------------------------------------
  // The widget
  // ---------------------------------------------------------------------------------------------
  var Base = window.HTMLElement;
  class FrontdeskWidget extends Base {
    constructor() {
      super();
      this.root = this.attachShadow({ mode: "open" });
      // State
      this.token = loadToken();
      this.identity = {};
      this.sessionStarted = false;
      this.customer = { name: null, email_known: false };
      this.availability = null;
      this.config = { title: null, greeting: null, prechat: { enabled: false, require_email: false }, capabilities: ["text", "emoji"] };
      this.visitorId = null;
      this.conversationId = null;
      this.lastSeq = 0;
      this.messages = new Map(); // message id -> message
      this.nodes = new Map(); // "m:<id>" | "c:<client_id>" -> element
      this.pending = store.get("pending", []); // [{client_id, text, attachment_ids, attachments, created_at}]
      this.failed = new Map(); // client_id -> detail
      this.sentAt = new Map(); // client_id -> when last transmitted
      this.seen = new Set(store.get("seen", [])); // agent message ids the visitor has seen
      this.readIds = new Set(); // visitor messages an agent has read
      this.tooLong = new Set(); // pending messages the server refused as too long (edit, not retry)
      this.outbox = []; // non-message frames waiting for the socket
      this.staged = []; // uploaded attachments not yet sent
      this.uploads = 0;
      this.ws = null;
      this.ready = false;
      this.attempt = 0;
      this.reconnectTimer = null;
      this.pingTimer = null;
      this.resendTimer = null;
      this.typingSentAt = 0;
      this.typingOn = false;
      this.typingTimer = null;
      this.agentTypingTimer = null;
      this.isOpen = false;
      this.stopped = false;
      this.build();
    }

    // --- DOM -----------------------------------------------------------------------------------
    build() {
      var self = this;
      var style = document.createElement("style");
      style.textContent = CSS;

      this.badge = h("span", { class: "badge", hidden: true, "aria-hidden": "true" });
      this.launcher = h(
        "button",
        {
          class: "launcher",
          type: "button",
          "aria-label": t("open_chat"),
          "aria-expanded": "false",
          "aria-controls": "fd-panel",
          onclick: function () {
            self.toggle();
          },
        },
        icon(ICON_CHAT, 28),
        this.badge
      );

      this.teaserText = h("span", { class: "text" });
      this.teaserWho = h("span", { class: "who" });
      this.teaser = h(
        "div",
        { class: "teaser", hidden: true, role: "status" },
        h("button", { class: "open-teaser", type: "button", onclick: function () { self.open(); } }, this.teaserWho, this.teaserText),
        h("button", { class: "x", type: "button", "aria-label": t("dismiss"), onclick: function () { self.teaser.hidden = true; } }, icon(ICON_CLOSE, 14))
      );

      this.titleEl = h("h2", { id: "fd-title", text: t("title") });
      this.statusEl = h("span", { class: "status", text: t("connecting") });
      this.connEl = h("div", { class: "conn", hidden: true, role: "status", text: t("reconnecting") });

      this.introGreeting = h("p", { class: "greeting", hidden: true });
      this.introCan = h("p", { class: "can" });
      this.introAvail = h("p", { class: "availability" });
      this.emailInput = h("input", { type: "email", id: "fd-ask-email", autocomplete: "email", maxlength: "254", required: true });
      this.askEmailForm = h(
        "form",
        { class: "ask-email", hidden: true, novalidate: true, onsubmit: function (e) { e.preventDefault(); self.submitAskEmail(); } },
        h("label", { for: "fd-ask-email", text: t("ask_email") }),
        h("div", { class: "inline-form" }, this.emailInput, h("button", { class: "btn", type: "submit", text: t("save") }))
      );
      // An address someone else has: the server mailed a link to prove it (outcome "confirm").
      this.confirmText = h("span");
      this.confirmAgain = h("button", { class: "linkish", type: "button", hidden: true, text: t("confirm_again"), onclick: function () { self.sendQueued({ type: "confirm_email", email: self.confirmEmail }); } });
      this.confirmEl = h("p", { class: "confirm-note", role: "status", hidden: true }, this.confirmText, " ", this.confirmAgain);
      this.introEl = h("div", { class: "intro" }, this.introGreeting, this.introCan, this.introAvail, this.confirmEl, this.askEmailForm);

      this.log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions", tabindex: "0", "aria-labelledby": "fd-title" }, this.introEl);
      this.typingEl = h("div", { class: "typing", "aria-live": "polite" });
      this.alertEl = h("div", { class: "alert", role: "alert", hidden: true });
      // Near the length limit: how much is left; over it: by how much, and an offer to send in parts.
      this.counterEl = h("span", { class: "counter", "aria-live": "polite" });
      this.splitBtn = h("button", { class: "link split", type: "button", hidden: true, onclick: function () { self.submit(true); } });
      this.limitEl = h("div", { class: "limit", hidden: true }, this.counterEl, this.splitBtn);
      this.stagedEl = h("div", { class: "staged", hidden: true });

      // Pre-chat form
      this.preName = h("input", { type: "text", id: "fd-pre-name", autocomplete: "name", maxlength: "200" });
      this.preEmail = h("input", { type: "email", id: "fd-pre-email", autocomplete: "email", maxlength: "254" });
      this.preEmailLabel = h("span", { text: t("email") });
      this.prechatForm = h(
        "form",
        { class: "prechat", hidden: true, novalidate: true, onsubmit: function (e) { e.preventDefault(); self.submitPrechat(); } },
        h("p", { text: t("prechat_intro"), style: "margin:0" }),
        h("label", { for: "fd-pre-name" }, h("span", null, t("name") + " ", t("optional")), this.preName),
        h("label", { for: "fd-pre-email" }, this.preEmailLabel, this.preEmail),
        h("button", { class: "btn", type: "submit", text: t("start_chat") })
      );

      // Composer
      this.textarea = h("textarea", {
        id: "fd-text",
        rows: "1",
        placeholder: t("placeholder"),
        oninput: function () { self.onInput(); },
        onkeydown: function (e) {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            self.submit();
          }
        },
        onpaste: function (e) {
          var files = e.clipboardData && e.clipboardData.files;
          if (files && files.length) {
            e.preventDefault();
            self.addFiles(files);
          }
        },
      });
      this.fileInput = h("input", { type: "file", class: "sr", tabindex: "-1", "aria-hidden": "true", multiple: true, onchange: function () {
        self.addFiles(self.fileInput.files);
        self.fileInput.value = "";
      } });
      this.attachBtn = h("button", { class: "attach", type: "button", "aria-label": t("attach"), title: t("attach"), onclick: function () { self.fileInput.click(); } }, icon(ICON_CLIP, 22));
      this.sendBtn = h("button", { class: "send", type: "submit", "aria-label": t("send"), title: t("send") }, icon(ICON_SEND, 20));
      this.composer = h(
        "form",
        { class: "composer", onsubmit: function (e) { e.preventDefault(); self.submit(); } },
        h("label", { class: "sr", for: "fd-text", text: t("message_label") }),
        this.attachBtn,
        this.fileInput,
        this.textarea,
        this.sendBtn
      );

      this.panel = h(
        "section",
        { class: "panel", id: "fd-panel", role: "dialog", "aria-labelledby": "fd-title", hidden: true },
        h(
          "header",
          null,
          h("div", { class: "titles" }, this.titleEl, this.statusEl),
          h("button", { class: "close", type: "button", "aria-label": t("close"), title: t("close"), onclick: function () { self.close(); } }, icon(ICON_CLOSE, 18))
        ),
        this.connEl,
        this.log,
        this.typingEl,
        this.alertEl,
        this.prechatForm,
        this.stagedEl,
        this.limitEl,
        this.composer
      );
      this.panel.addEventListener("keydown", function (e) {
        if (e.key === "Escape") {
          e.stopPropagation();
          self.close();
        }
      });

      this.wrap = h("div", { class: "fd", lang: LOCALE }, this.teaser, this.panel, this.launcher);
      this.root.append(style, this.wrap);

      this.textarea.value = store.get("draft", "") || "";
      this.updateCounter();
      this.pending.forEach(function (p) { self.renderPending(p); });
      this.renderIntro();
      this.updateBadge();
    }

    connectedCallback() {
      var self = this;
      this.style.setProperty("position", "fixed", "important");
      this.style.setProperty("z-index", "2147483000", "important");
      if (this._wired) return;
      this._wired = true;
      document.addEventListener("visibilitychange", function () {
        if (document.visibilityState === "visible") {
          self.markRead();
          if (!self.ws && !self.stopped) self.reconnectNow();
        }
      });
      window.addEventListener("online", function () { self.reconnectNow(); });
      window.addEventListener("storage", function (e) { self.onStorage(e); });
    }

    // --- open / close --------------------------------------------------------------------------
    open() {
      if (this.isOpen) return;
      this.isOpen = true;
      this.panel.hidden = false;
      this.teaser.hidden = true;
      this.launcher.setAttribute("aria-expanded", "true");
      this.launcher.setAttribute("aria-label", t("close_chat"));
      try { sessionStorage.setItem(KEY + "open", "1"); } catch (e) { /* ignore */ }
      this.updateComposerMode();
      this.scrollToEnd();
      (this.prechatForm.hidden ? this.textarea : this.preName).focus();
      this.markRead();
    }

    close() {
      if (!this.isOpen) return;
      this.isOpen = false;
      this.panel.hidden = true;
      this.launcher.setAttribute("aria-expanded", "false");
      try { sessionStorage.removeItem(KEY + "open"); } catch (e) { /* ignore */ }
      this.stopTyping();
      this.updateBadge();
      this.launcher.focus();
    }

    toggle() {
      if (this.isOpen) this.close();
      else this.open();
    }

    scrollToEnd() {
      this.log.scrollTop = this.log.scrollHeight;
    }

    // --- session -------------------------------------------------------------------------------
    async createSession() {
      var body = { inbox: INBOX, page_url: String(location.href).slice(0, 2000) };
      if (VISITOR_LANG) body.locale = VISITOR_LANG; // the title and greeting come in it when the inbox has it
      if (this.token) body.visitor_token = this.token;
      var id = this.identity;
      var asked = JSON.stringify(id);
      ["user_id", "user_hash", "name", "email"].forEach(function (k) {
        if (id[k]) body[k] = id[k];
      });
      var res = await fetch(BASE + "api/v1/widget/sessions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        mode: "cors",
      });
      if (res.status === 403 && id.user_id) {
        // A wrong identity signature is refused by the server; chat on as an anonymous visitor.
        console.warn("[frontdesk] identify was refused (bad user_hash); continuing anonymously");
        this.identity = {};
        return this.createSession();
      }
      if (res.status === 404 || res.status === 422 || res.status === 403) {
        // Unknown inbox, or this site is not in the inbox's allowed_origins: retrying won't help.
        var e = new Error("inbox");
        e.fatal = true;
        throw e;
      }
      if (!res.ok) throw new Error("session " + res.status);
      var data = await res.json();
      var changed = data.visitor_token !== this.token;
      this.token = data.visitor_token;
      saveToken(this.token);
      this.customer = data.customer || this.customer;
      this.availability = data.availability || null;
      this.config = Object.assign({}, this.config, data.config || {});
      this.config.prechat = Object.assign({ enabled: false, require_email: false }, (data.config || {}).prechat || {});
      if (data.conversation_id) this.conversationId = data.conversation_id;
      this.sessionStarted = true;
      this.configLoaded = true;
      this.applyConfig();
      if (JSON.stringify(this.identity) !== asked) {
        // identify() was called while this request was in flight: ask again with it.
        return (await this.createSession()) || changed;
      }
      return changed;
    }

    applyConfig() {
      var c = this.config;
      this.titleEl.textContent = c.title || t("title");
      if (typeof c.accent_color === "string" && /^#[0-9a-fA-F]{3,8}$/.test(c.accent_color)) {
        this.wrap.style.setProperty("--fd-accent", c.accent_color);
      }
      var types = Array.isArray(c.allowed_types) && c.allowed_types.length ? c.allowed_types : DEFAULT_TYPES;
      this.fileInput.setAttribute("accept", types.join(","));
      this.attachBtn.hidden = (c.capabilities || []).indexOf("attachments") < 0;
      this.renderIntro();
      this.updateComposerMode();
    }

    async start() {
      if (this.stopped) return;
      try {
        await this.createSession();
      } catch (e) {
        if (e && e.fatal) {
          console.error("[frontdesk] inbox " + INBOX + " is unknown or does not allow this site; the chat is disabled");
          this.statusEl.textContent = t("unavailable");
          this.stopped = true;
          return;
        }
        this.setConnected(false);
        this.scheduleReconnect(true);
        return;
      }
      this.connect();
    }

    // identify() after the session exists: ask the server again with the identity attached.
    async reidentify() {
      if (!this.sessionStarted) return; // the first (or in-flight) session request carries it
      try {
        var changed = await this.createSession();
        if (changed) {
          this.tokenChanged = true;
          this.reconnectNow();
        }
      } catch (e) {
        /* the next reconnect sends it again */
        this.sessionStarted = false;
      }
    }

    // --- socket --------------------------------------------------------------------------------
    connect() {
      var self = this;
      if (this.stopped || !this.token) return;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      var ws;
      try {
        ws = new WebSocket(WS_BASE + "widget/ws"); // the token goes in the first frame, never the URL
      } catch (e) {
        this.scheduleReconnect(false);
        return;
      }
      this.ws = ws;
      this.ready = false;
      this.gotFrameAt = Date.now();
      ws.onopen = function () {
        if (self.ws !== ws) return;
        ws.send(JSON.stringify({ type: "auth", visitor_token: self.token }));
        // Nothing shown yet (a fresh page): ask for the snapshot. Otherwise resume after last_seq;
        // the server replays what was missed, or sends a snapshot when it cannot.
        var hello = { type: "hello", last_seq: self.synced ? self.lastSeq : null };
        if (self.synced && self.conversationId) hello.conversation_id = self.conversationId;
        if (self.synced && self.epoch) hello.epoch = self.epoch;
        self.welcomed = false;
        ws.send(JSON.stringify(hello));
      };
      ws.onmessage = function (ev) {
        if (self.ws !== ws) return;
        self.gotFrameAt = Date.now();
        var frame;
        try {
          frame = JSON.parse(ev.data);
        } catch (e) {
          return;
        }
        if (frame && typeof frame === "object") self.onFrame(frame);
      };
      ws.onclose = function (ev) {
        if (self.ws !== ws) return;
        self.ws = null;
        self.ready = false;
        clearInterval(self.pingTimer);
        self.setConnected(false);
        // 1008 / 4xxx: the server refused the visitor token -> ask for a new session first.
        // 4429: too many sockets from this address -> the token is fine; wait longer.
        var tooMany = ev.code === 4429;
        if (tooMany) self.attempt = Math.max(self.attempt, 4);
        var refused = !tooMany && (ev.code === 1008 || (ev.code >= 4000 && ev.code < 5000));
        self.scheduleReconnect(refused || self.attempt >= 3);
      };
      ws.onerror = function () {
        /* onclose follows */
      };
    }

    scheduleReconnect(needSession) {
      var self = this;
      if (this.stopped || this.reconnectTimer) return;
      if (needSession) this.sessionStarted = false;
      var delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, this.attempt));
      delay = delay / 2 + Math.random() * (delay / 2);
      this.attempt += 1;
      this.reconnectTimer = setTimeout(function () {
        self.reconnectTimer = null;
        if (self.sessionStarted) self.connect();
        else self.start();
      }, delay);
    }

    reconnectNow() {
      if (this.stopped) return;
      if (this.ws && this.ws.readyState <= 1) {
        if (this.tokenChanged) {
          this.tokenChanged = false;
          var old = this.ws;
          this.ws = null;
          old.close(1000);
        } else {
          return;
        }
      }
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.attempt = 0;
      if (this.sessionStarted) this.connect();
      else this.start();
    }

    send(frame) {
      if (this.ws && this.ready && this.ws.readyState === 1) {
        this.ws.send(JSON.stringify(frame));
        return true;
      }
      return false;
    }

    // Frames other than messages wait for the socket (bounded) — a `track` before load is not lost.
    sendQueued(frame) {
      if (!this.send(frame)) {
        this.outbox.push(frame);
        if (this.outbox.length > 100) this.outbox.shift();
      }
    }

    setConnected(on) {
      var a = this.availability;
      var here = a && a.open && a.agents_online > 0 && a.reply_expectation !== "by email";
      this.statusEl.textContent = on ? (here ? t("online") : t("away_short")) : t("connecting");
      this.connEl.hidden = on || !this.hadConnection;
    }

    // --- frames from the server ----------------------------------------------------------------
    onFrame(f) {
      if (typeof f.seq === "number" && f.seq > this.lastSeq) this.lastSeq = f.seq;
      switch (f.type) {
        case "welcome":
          this.onWelcome(f);
          break;
        case "snapshot":
          this.onSnapshot(f);
          break;
        case "ack":
          this.onAck(f);
          break;
        case "message":
          if (f.message) this.onMessage(f.message, true);
          break;
        case "typing":
          this.onAgentTyping(f);
          break;
        case "read":
          this.onAgentRead(f.message_id);
          break;
        case "availability":
          // An agent came or went (or business hours began or ended): the status line follows.
          if (f.availability && typeof f.availability === "object") {
            this.availability = f.availability;
            this.renderIntro();
            if (this.ready) this.setConnected(true);
          }
          break;
        case "error":
          this.onError(f);
          break;
        case "prechat":
          // The contact details were applied; the server says whether it now knows an email.
          if (typeof f.email_known === "boolean") this.customer.email_known = f.email_known;
          this.renderIntro();
          if (f.confirm) this.showConfirm(f.confirm);
          break;
        case "confirm_email":
          this.showConfirm(f);
          break;
        case "email_confirmed":
          // The link was opened: this visitor is now the address's customer (history follows).
          this.customer.email_known = true;
          this.renderIntro();
          this.showConfirm({ done: true, email: this.confirmEmail });
          break;
        default:
          break; // pong and anything newer than this widget
      }
    }

    onWelcome(f) {
      var self = this;
      if (f.availability && typeof f.availability === "object") {
        this.availability = f.availability;
        this.renderIntro();
      }
      if (this.welcomed) {
        // The conversation changed on a live socket (the first message): its topic starts here.
        if (f.conversation_id && f.conversation_id !== this.conversationId && typeof f.last_seq === "number") {
          this.lastSeq = f.last_seq;
        }
        if (f.conversation_id) this.conversationId = f.conversation_id;
        return;
      }
      if (f.conversation_id) this.conversationId = f.conversation_id;
      this.welcomed = true;
      this.ready = true;
      this.hadConnection = true;
      this.attempt = 0;
      this.visitorId = f.visitor_id || this.visitorId;
      if (typeof f.epoch === "string") this.epoch = f.epoch;
      this.setConnected(true);
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(function () { self.heartbeat(); }, PING_MS);
      clearInterval(this.resendTimer);
      this.resendTimer = setInterval(function () { self.resendPending(false); }, RESEND_AFTER_MS);
      var queued = this.outbox.splice(0);
      queued.forEach(function (frame) { self.sendQueued(frame); });
      this.resendPending(true);
      this.markRead();
    }

    heartbeat() {
      if (!this.ws) return;
      if (Date.now() - this.gotFrameAt > PING_MS * 2.5) {
        // Nothing heard for too long: the connection is dead even if the browser has not noticed.
        var old = this.ws;
        this.ws = null;
        this.ready = false;
        try { old.close(); } catch (e) { /* ignore */ }
        this.setConnected(false);
        this.scheduleReconnect(false);
        return;
      }
      this.send({ type: "ping" });
    }

    onSnapshot(f) {
      var self = this;
      this.synced = true;
      if (typeof f.last_seq === "number") this.lastSeq = f.last_seq; // the new baseline
      var list = Array.isArray(f.messages) ? f.messages : [];
      var keep = new Set(list.map(function (m) { return m && m.id; }));
      // The snapshot is the whole visible history: drop what is no longer in it (a new conversation).
      Array.from(this.messages.keys()).forEach(function (id) {
        if (!keep.has(id)) {
          self.messages.delete(id);
          var n = self.nodes.get("m:" + id);
          if (n) n.remove();
          self.nodes.delete("m:" + id);
        }
      });
      list.forEach(function (m) { if (m && m.id) self.onMessage(m, false); });
      this.renderIntro();
      this.updateBadge();
      this.markRead();
      this.scrollToEnd();
    }

    onAck(f) {
      var cid = f.client_id;
      var idx = this.pending.findIndex(function (p) { return p.client_id === cid; });
      var item = idx >= 0 ? this.pending[idx] : null;
      if (idx >= 0) {
        this.pending.splice(idx, 1);
        store.set("pending", this.pending);
      }
      this.sentAt.delete(cid);
      this.failed.delete(cid);
      var node = this.nodes.get("c:" + cid);
      this.nodes.delete("c:" + cid);
      if (!f.message_id) {
        if (node) node.remove();
        return;
      }
      if (this.messages.has(f.message_id)) {
        if (node) node.remove(); // the server already showed it (snapshot / another tab)
        return;
      }
      if (node) node.remove();
      if (item) {
        this.onMessage(
          {
            id: f.message_id,
            direction: "in",
            author_type: "customer",
            text: item.text,
            attachments: item.attachments || [],
            created_at: item.created_at,
            kind: "text",
          },
          false
        );
      }
    }

    onMessage(m, live) {
      if (!m || !m.id) return;
      var known = this.messages.has(m.id);
      this.messages.set(m.id, m);
      var node = this.renderMessage(m);
      var old = this.nodes.get("m:" + m.id);
      if (old) old.replaceWith(node);
      else this.insertOrdered(node, ts(m.created_at));
      this.nodes.set("m:" + m.id, node);
      if (m.direction === "out") {
        this.typingEl.textContent = "";
        if (!known && live && !this.seen.has(m.id)) this.notify(m);
        this.markRead();
        this.updateBadge();
      }
      // What the agent has read (in the history after a reload, too) shows as seen.
      if (m.direction === "in" && m.read_by_agent_at && !this.readIds.has(m.id)) this.onAgentRead(m.id);
      if (!known) this.renderIntro();
      if (!known) this.scrollToEnd();
    }

    insertOrdered(node, at) {
      node.dataset.at = String(at);
      var kids = this.log.children;
      for (var i = kids.length - 1; i >= 0; i--) {
        var k = kids[i];
        if (k === this.introEl) break;
        if (Number(k.dataset.at || 0) <= at) {
          k.after(node);
          return;
        }
      }
      this.introEl.after(node);
    }

    notify(m) {
      var visible = this.isOpen && document.visibilityState === "visible";
      if (visible) return;
      var recent = Math.abs(Date.now() - ts(m.created_at)) < 5 * 60 * 1000;
      if (recent) chime();
      if (!this.isOpen) {
        var text = m.kind === "offer" && m.offer ? m.offer.title || m.offer.body || "" : m.text || "";
        this.teaserWho.textContent = m.author_name || this.config.title || t("support");
        this.teaserText.textContent = text.length > 140 ? text.slice(0, 139) + "…" : text;
        this.teaser.hidden = false;
      }
    }

    onAgentTyping(f) {
      var self = this;
      clearTimeout(this.agentTypingTimer);
      if (f.on) {
        this.typingEl.textContent = f.author_name ? t("typing", { name: f.author_name }) : t("someone_typing");
        this.agentTypingTimer = setTimeout(function () { self.typingEl.textContent = ""; }, 8000);
      } else {
        this.typingEl.textContent = "";
      }
    }

    // The agent read this visitor message, so every earlier one in the log is read too.
    onAgentRead(messageId) {
      var target = this.nodes.get("m:" + messageId);
      if (!target) return;
      var kids = Array.from(this.log.children);
      var end = kids.indexOf(target);
      for (var i = 0; i <= end; i++) {
        var k = kids[i];
        if (!k.classList.contains("in") || k.classList.contains("pending") || !k.dataset.id) continue;
        this.readIds.add(k.dataset.id);
        var st = k.querySelector(".state");
        if (st) st.textContent = t("seen");
      }
    }

    onError(f) {
      var self = this;
      var cid = f.client_id;
      if (f.code === "rate_limited") {
        this.showAlert(t("rate_limited"));
        // Nothing acknowledged is dropped; what is pending goes again a little later.
        this.pending.forEach(function (p) { self.sentAt.set(p.client_id, Date.now() + 20000); });
        return;
      }
      if (cid && this.pending.some(function (p) { return p.client_id === cid; })) {
        this.failed.set(cid, f.code === "too_large" ? t("server_too_long", { max: num(MAX_TEXT) }) : f.detail || f.code || "");
        if (f.code === "too_large") this.tooLong.add(cid);
        this.renderPending(this.pending.find(function (p) { return p.client_id === cid; }));
        return;
      }
      if (f.detail) this.showAlert(String(f.detail));
    }

    showAlert(text) {
      var self = this;
      this.alertEl.textContent = text;
      this.alertEl.hidden = false;
      clearTimeout(this.alertTimer);
      this.alertTimer = setTimeout(function () { self.alertEl.hidden = true; }, 8000);
    }

    // --- read receipts and the unread badge ----------------------------------------------------
    markRead() {
      if (!this.isOpen || document.visibilityState !== "visible") return;
      var self = this;
      var changed = false;
      this.messages.forEach(function (m) {
        if (m.direction === "out" && !self.seen.has(m.id)) {
          self.seen.add(m.id);
          self.sendQueued({ type: "read", message_id: m.id });
          changed = true;
        }
      });
      if (changed) {
        var list = Array.from(this.seen);
        store.set("seen", list.slice(-300));
      }
      this.updateBadge();
    }

    unreadCount() {
      var self = this;
      var n = 0;
      this.messages.forEach(function (m) {
        if (m.direction === "out" && !self.seen.has(m.id)) n += 1;
      });
      return n;
    }

    updateBadge() {
      var n = this.unreadCount();
      this.badge.hidden = n === 0;
      this.badge.textContent = n === 0 ? "" : n > 9 ? "9+" : String(n);
      if (!this.isOpen) this.launcher.setAttribute("aria-label", n ? t("open_chat_unread", { n: n }) : t("open_chat"));
    }

    // --- rendering -----------------------------------------------------------------------------
    renderIntro() {
      var c = this.config;
      var a = this.availability;
      // The inbox's greeting in the visitor's language, else the widget's own (once the inbox is known).
      var greeting = c.greeting || (this.configLoaded ? t("greeting") : "");
      this.introGreeting.textContent = greeting;
      this.introGreeting.hidden = !greeting;
      var caps = c.capabilities || ["text", "emoji"];
      var can = t("can_do");
      if (caps.indexOf("attachments") >= 0) can += t("can_do_files", { mb: c.max_attachment_mb || 10 });
      this.introCan.textContent = can + ".";
      var email = store.get("email", null) || this.identity.email || null;
      var ask = false;
      if (!a) {
        this.introAvail.textContent = "";
      } else if (a.open && a.agents_online > 0 && a.reply_expectation !== "by email") {
        this.introAvail.textContent = t("reply_soon");
      } else {
        var text = email ? t("away_at", { email: email }) : t("away");
        if (a.next_open_at) text += " " + t("back_at", { when: when(a.next_open_at) });
        this.introAvail.textContent = text;
        ask = !!a.ask_email && !this.customer.email_known && !email;
      }
      this.askEmailForm.hidden = !ask;
    }

    renderMessage(m) {
      var self = this;
      var kind = m.kind || "text";
      var cls = "msg " + (kind === "text" ? (m.direction === "in" ? "in" : "out") : kind + " out");
      var node = h("div", { class: cls, "data-id": m.id });
      if (kind === "offer") {
        node.append(this.renderOffer(m));
      } else {
        if (m.direction === "out" && kind === "text") {
          node.append(h("div", { class: "author", text: m.author_name || t("support") }));
        }
        var bubble = h("div", { class: "bubble" });
        if (m.direction === "out" && m.html) {
          bubble.classList.add("html");
          bubble.append(safeHtml(m.html));
        } else {
          bubble.textContent = m.text || "";
        }
        var atts = this.renderAttachments(m.attachments);
        if (atts) bubble.append(atts);
        node.append(bubble);
      }
      var meta = h("div", { class: "meta" }, h("time", { datetime: m.created_at || "", text: time(m.created_at) }));
      if (m.direction === "in") {
        var read = this.readIds.has(m.id);
        meta.append(h("span", { class: "state", text: read ? t("seen") : t("sent") }));
      }
      node.append(meta);
      node.addEventListener("load", function () { self.scrollToEnd(); }, true);
      return node;
    }

    renderOffer(m) {
      var self = this;
      var o = m.offer || {};
      var answers = store.get("offers", {});
      var answered = answers[o.offer_id];
      var card = h("div", { class: "card", role: "group", "aria-label": o.title || t("support") });
      if (o.title) card.append(h("p", { class: "offer-title", text: o.title }));
      var body = o.body || m.text || "";
      if (body) card.append(h("p", { class: "offer-body", text: body }));
      if (answered) {
        card.append(h("p", { class: "answer", text: answered === "accept" ? t("accepted") : t("declined") }));
        return card;
      }
      function answer(value) {
        if (!o.offer_id) return;
        self.sendQueued({ type: "offer_answer", offer_id: o.offer_id, answer: value });
        var all = store.get("offers", {});
        all[o.offer_id] = value;
        store.set("offers", all);
        var fresh = self.renderMessage(m);
        var old = self.nodes.get("m:" + m.id);
        fresh.dataset.at = old ? old.dataset.at : String(ts(m.created_at));
        if (old) old.replaceWith(fresh);
        self.nodes.set("m:" + m.id, fresh);
        var st = fresh.querySelector(".answer");
        if (st) st.setAttribute("tabindex", "-1");
        if (st) st.focus();
      }
      card.append(
        h(
          "div",
          { class: "actions" },
          h("button", { class: "btn accept", type: "button", text: o.accept_label || t("accept"), onclick: function () { answer("accept"); } }),
          h("button", { class: "btn secondary decline", type: "button", text: o.decline_label || t("decline"), onclick: function () { answer("decline"); } })
        )
      );
      return card;
    }

    // The server gives every attachment a short-lived signed link (no credential in it); paths are
    // relative to the server the widget came from.
    attachmentUrl(a) {
      if (typeof a.url !== "string" || !a.url) return null;
      return safeUrl(a.url.charAt(0) === "/" ? BASE + a.url.slice(1) : a.url);
    }

    renderAttachments(list) {
      if (!Array.isArray(list) || !list.length) return null;
      var self = this;
      var box = h("div", { class: "atts" });
      list.forEach(function (a) {
        if (!a) return;
        var url = self.attachmentUrl(a);
        var name = a.filename || t("attachment");
        var isImage = /^image\/(png|jpeg|gif|webp)$/.test(a.content_type || "");
        if (url && isImage) {
          box.append(h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, h("img", { src: url, alt: name, loading: "lazy" })));
        } else if (url) {
          box.append(h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: "📎 " + name }));
        } else {
          box.append(h("span", { text: "📎 " + name }));
        }
      });
      return box;
    }

    renderPending(p) {
      if (!p) return;
      var self = this;
      var failed = this.failed.get(p.client_id);
      var node = h("div", { class: "msg in pending" + (failed != null ? " failed" : ""), "data-client-id": p.client_id });
      var bubble = h("div", { class: "bubble", text: p.text || "" });
      var atts = this.renderAttachments(p.attachments);
      if (atts) bubble.append(atts);
      node.append(bubble);
      var meta = h("div", { class: "meta" }, h("span", { class: "state", text: failed != null ? t("not_sent") + (failed ? ": " + failed : "") : t("sending") }));
      if (failed != null && this.tooLong.has(p.client_id)) {
        // Sent again it would be refused again: back into the box, to shorten or send in parts.
        meta.append(
          h("button", { class: "link", type: "button", text: t("edit"), onclick: function () {
            self.dropPending(p.client_id);
            self.textarea.value = p.text || "";
            self.onInput();
            self.textarea.focus();
          } }),
          h("button", { class: "link", type: "button", text: t("dismiss"), onclick: function () { self.dropPending(p.client_id); } })
        );
      } else if (failed != null) {
        meta.append(
          h("button", { class: "link", type: "button", text: t("retry"), onclick: function () {
            self.failed.delete(p.client_id);
            self.renderPending(p);
            self.transmit(p);
          } }),
          h("button", { class: "link", type: "button", text: t("dismiss"), onclick: function () { self.dropPending(p.client_id); } })
        );
      }
      node.append(meta);
      var old = this.nodes.get("c:" + p.client_id);
      if (old) {
        node.dataset.at = old.dataset.at;
        old.replaceWith(node);
      } else {
        this.log.append(node);
        node.dataset.at = String(ts(p.created_at));
      }
      this.nodes.set("c:" + p.client_id, node);
    }

    dropPending(cid) {
      this.pending = this.pending.filter(function (p) { return p.client_id !== cid; });
      store.set("pending", this.pending);
      this.failed.delete(cid);
      this.tooLong.delete(cid);
      var n = this.nodes.get("c:" + cid);
      if (n) n.remove();
      this.nodes.delete("c:" + cid);
    }

    // --- sending -------------------------------------------------------------------------------
    transmit(p) {
      var frame = { type: "message", client_id: p.client_id, text: p.text || "" };
      if (p.attachment_ids && p.attachment_ids.length) frame.attachment_ids = p.attachment_ids;
      if (this.send(frame)) this.sentAt.set(p.client_id, Date.now());
      else this.reconnectNow();
    }

    // After (re)connecting everything unacknowledged goes again; the server stores it once.
    resendPending(all) {
      var self = this;
      var now = Date.now();
      this.pending.forEach(function (p) {
        if (self.failed.has(p.client_id)) return;
        var last = self.sentAt.get(p.client_id);
        if (all || last == null || now - last >= RESEND_AFTER_MS) self.transmit(p);
      });
    }

    // Enter / Send. A text over the limit is never cut: it stays in the box with the reason, and
    // goes only when the visitor asks for it in parts (`inParts`, the counter's button).
    submit(inParts) {
      if (this.uploads > 0) return; // wait for uploads in progress
      var self = this;
      var text = trim(this.textarea.value);
      var atts = this.staged.slice();
      if (!text && !atts.length) return;
      var texts = [text];
      if (charCount(text) > MAX_TEXT) {
        texts = splitText(text, MAX_TEXT);
        if (!inParts) {
          this.showAlert(t("too_long", { parts: texts.length }));
          this.textarea.focus();
          return;
        }
      }
      var now = Date.now();
      var items = texts.map(function (part, i) {
        return {
          client_id: uuid(),
          text: part,
          attachment_ids: i === 0 ? atts.map(function (a) { return a.id; }) : [],
          attachments: i === 0 ? atts : [],
          created_at: new Date(now + i).toISOString(),
        };
      });
      items.forEach(function (p) { self.pending.push(p); });
      store.set("pending", this.pending);
      this.textarea.value = "";
      store.set("draft", null);
      this.updateCounter();
      if (inParts) this.alertEl.hidden = true; // "too long to send as one message" is answered
      this.staged = [];
      this.renderStaged();
      this.stopTyping();
      items.forEach(function (p) { self.renderPending(p); });
      this.scrollToEnd();
      items.forEach(function (p) { self.transmit(p); });
      this.textarea.focus();
    }

    updateCounter() {
      var n = charCount(trim(this.textarea.value));
      var left = MAX_TEXT - n;
      var over = left < 0;
      this.limitEl.hidden = left > NEAR_LIMIT;
      this.limitEl.classList.toggle("over", over);
      this.counterEl.textContent = this.limitEl.hidden
        ? ""
        : over
          ? t("chars_over", { n: num(-left), max: num(MAX_TEXT) })
          : t("chars_left", { n: num(left) });
      var parts = over ? splitText(trim(this.textarea.value), MAX_TEXT).length : 0;
      this.splitBtn.hidden = !over;
      this.splitBtn.textContent = over ? t("send_parts", { parts: parts }) : "";
    }

    onInput() {
      store.set("draft", this.textarea.value || null);
      this.updateCounter();
      var self = this;
      if (!this.textarea.value) {
        this.stopTyping();
        return;
      }
      var now = Date.now();
      if (!this.typingOn || now - this.typingSentAt > 4000) {
        if (this.send({ type: "typing", on: true })) {
          this.typingOn = true;
          this.typingSentAt = now;
        }
      }
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(function () { self.stopTyping(); }, 3000);
    }

    stopTyping() {
      clearTimeout(this.typingTimer);
      if (this.typingOn) this.send({ type: "typing", on: false });
      this.typingOn = false;
    }

    showConfirm(c) {
      this.confirmEmail = c.email || this.confirmEmail;
      var key = c.done ? "confirm_done" : c.sent ? "confirm_sent" : "confirm_wait";
      this.confirmText.textContent = t(key, { email: this.confirmEmail || "" });
      this.confirmAgain.hidden = !!c.done || !c.sent;
      this.confirmEl.hidden = false;
      if (!c.done) this.introAvail.textContent = "";
    }

    // --- pre-chat and the email asked for when away --------------------------------------------
    needsPrechat() {
      var pc = this.config.prechat || {};
      if (!pc.enabled || store.get("prechat_done", false)) return false;
      if (this.messages.size || this.pending.length) return false;
      if (this.customer.name && (this.customer.email_known || !pc.require_email)) return false;
      return true;
    }

    updateComposerMode() {
      var pre = this.needsPrechat();
      this.prechatForm.hidden = !pre;
      this.composer.hidden = pre;
      this.stagedEl.hidden = pre || !this.staged.length;
      var required = !!(this.config.prechat || {}).require_email;
      this.preEmail.required = required;
      this.preEmailLabel.textContent = required ? t("email") : t("email") + " " + t("optional");
      if (this.identity.name && !this.preName.value) this.preName.value = this.identity.name;
      if (this.identity.email && !this.preEmail.value) this.preEmail.value = this.identity.email;
    }

    validEmail(input) {
      var v = input.value.trim();
      return v && v.length <= 254 && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v) ? v : null;
    }

    submitPrechat() {
      var name = this.preName.value.trim().slice(0, 200);
      var email = this.validEmail(this.preEmail);
      var required = !!(this.config.prechat || {}).require_email;
      if ((required || this.preEmail.value.trim()) && !email) {
        this.preEmail.setAttribute("aria-invalid", "true");
        this.showAlert(t("email_invalid"));
        this.preEmail.focus();
        return;
      }
      this.preEmail.removeAttribute("aria-invalid");
      var frame = { type: "prechat" };
      if (name) frame.name = name;
      if (email) {
        frame.email = email;
        store.set("email", email);
      }
      this.sendQueued(frame);
      if (name) this.customer.name = name;
      if (email) this.customer.email_known = true;
      store.set("prechat_done", true);
      this.alertEl.hidden = true;
      this.updateComposerMode();
      this.renderIntro();
      this.textarea.focus();
    }

    submitAskEmail() {
      var email = this.validEmail(this.emailInput);
      if (!email) {
        this.emailInput.setAttribute("aria-invalid", "true");
        this.showAlert(t("email_invalid"));
        this.emailInput.focus();
        return;
      }
      this.emailInput.removeAttribute("aria-invalid");
      this.sendQueued({ type: "prechat", email: email });
      store.set("email", email);
      this.customer.email_known = true;
      this.alertEl.hidden = true;
      this.renderIntro();
      this.introAvail.textContent = t("email_saved", { email: email });
      this.textarea.focus();
    }

    // --- attachments ---------------------------------------------------------------------------
    addFiles(fileList) {
      var self = this;
      var types = Array.isArray(this.config.allowed_types) && this.config.allowed_types.length ? this.config.allowed_types : DEFAULT_TYPES;
      var mb = Number(this.config.max_attachment_mb) || 10;
      Array.prototype.forEach.call(fileList || [], function (file) {
        var typeOk = types.some(function (ty) {
          return ty === file.type || (ty.slice(-2) === "/*" && file.type.indexOf(ty.slice(0, -1)) === 0);
        });
        if (!typeOk) return self.showAlert(t("bad_type", { name: file.name }));
        if (file.size > mb * 1024 * 1024) return self.showAlert(t("too_large", { name: file.name, mb: mb }));
        self.upload(file);
      });
    }

    upload(file) {
      var self = this;
      if (!this.token) return this.showAlert(t("upload_failed", { name: file.name, reason: t("connecting") }));
      var progress = h("progress", { max: "100", value: "0" });
      var label = h("span", { class: "name", text: t("uploading", { name: file.name, pct: 0 }) });
      var chip = h("div", { class: "chip uploading", role: "status" }, label, progress);
      this.stagedEl.append(chip);
      this.stagedEl.hidden = false;
      this.uploads += 1;
      this.sendBtn.disabled = true;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", BASE + "api/v1/widget/attachments");
      xhr.setRequestHeader("Authorization", "Visitor " + this.token);
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.round((e.loaded / e.total) * 100);
        progress.value = pct;
        label.textContent = t("uploading", { name: file.name, pct: pct });
      };
      function done(errorText) {
        self.uploads -= 1;
        self.sendBtn.disabled = self.uploads > 0;
        chip.remove();
        if (errorText) self.showAlert(t("upload_failed", { name: file.name, reason: errorText }));
        self.renderStaged();
      }
      xhr.onload = function () {
        var data = null;
        try {
          data = JSON.parse(xhr.responseText);
        } catch (e) {
          data = null;
        }
        if (xhr.status >= 200 && xhr.status < 300 && data && data.id) {
          self.staged.push({ id: data.id, filename: data.filename || file.name, content_type: data.content_type || file.type, size: data.size || file.size, url: data.url });
          done(null);
        } else {
          done((data && (data.detail || data.title)) || "HTTP " + xhr.status);
        }
      };
      xhr.onerror = function () { done(t("connecting")); };
      var form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    }

    renderStaged() {
      var self = this;
      Array.from(this.stagedEl.querySelectorAll(".chip.ready")).forEach(function (n) { n.remove(); });
      this.staged.forEach(function (a) {
        self.stagedEl.append(
          h(
            "div",
            { class: "chip ready" },
            h("span", { class: "name", text: "📎 " + a.filename }),
            h("button", { type: "button", "aria-label": t("remove", { name: a.filename }), onclick: function () {
              self.staged = self.staged.filter(function (x) { return x.id !== a.id; });
              self.renderStaged();
              self.textarea.focus();
            } }, icon(ICON_CLOSE, 12))
          )
        );
      });
      this.stagedEl.hidden = !this.stagedEl.children.length;
    }

    // --- other tabs ----------------------------------------------------------------------------
    onStorage(e) {
      if (!e.key || e.key.indexOf(KEY) !== 0) return;
      var k = e.key.slice(KEY.length);
      var self = this;
      if (k === "visitor" && e.newValue && e.newValue !== this.token) {
        this.token = e.newValue;
        this.tokenChanged = true;
        this.reconnectNow();
      } else if (k === "pending") {
        var fresh = store.get("pending", []);
        var ids = new Set(fresh.map(function (p) { return p.client_id; }));
        this.pending.forEach(function (p) {
          if (!ids.has(p.client_id)) {
            var n = self.nodes.get("c:" + p.client_id);
            if (n) n.remove();
            self.nodes.delete("c:" + p.client_id);
          }
        });
        var mine = new Set(this.pending.map(function (p) { return p.client_id; }));
        this.pending = fresh;
        fresh.forEach(function (p) {
          if (!mine.has(p.client_id)) self.renderPending(p);
        });
      } else if (k === "seen") {
        store.get("seen", []).forEach(function (id) { self.seen.add(id); });
        this.updateBadge();
      }
    }

    // --- public API ----------------------------------------------------------------------------
    identify(data) {
      if (!data || typeof data !== "object") return;
      var next = {};
      ["user_id", "user_hash", "name", "email"].forEach(function (k) {
        var v = str(data[k], k === "user_hash" ? 200 : 254);
        if (v) next[k] = v;
      });
      this.identity = Object.assign({}, this.identity, next);
      if (next.email) this.renderIntro();
      this.updateComposerMode();
      this.reidentify();
    }

    track(event, props) {
      if (typeof event !== "string" || !/^[a-z0-9_.]{1,100}$/.test(event)) {
        console.warn("[frontdesk] track: event names are lower-case letters, digits, '_' and '.'", event);
        return;
      }
      var properties = props && typeof props === "object" ? props : {};
      try {
        if (JSON.stringify(properties).length > 8000) return;
      } catch (e) {
        return;
      }
      this.sendQueued({ type: "track", event: event, properties: properties });
    }
  }

  if (!customElements.get("frontdesk-widget")) customElements.define("frontdesk-widget", FrontdeskWidget);

  // ---------------------------------------------------------------------------------------------
  // Boot: the command queue, then the session
  // ---------------------------------------------------------------------------------------------
  function boot() {
    var widget = document.createElement("frontdesk-widget");
    document.body.append(widget);

    function api(cmd) {
      var args = Array.prototype.slice.call(arguments, 1);
      switch (cmd) {
        case "identify":
          return widget.identify(args[0]);
        case "track":
          return widget.track(args[0], args[1]);
        case "open":
          return widget.open();
        case "close":
          return widget.close();
        case "toggle":
          return widget.toggle();
        default:
          console.warn("[frontdesk] unknown command", cmd);
      }
    }
    var queued = (window.frontdesk && window.frontdesk.q) || [];
    api.q = { push: function (args) { api.apply(null, args); } }; // a stale stub still works
    api.loaded = true;
    api.version = "1";
    window.frontdesk = api;
    var reopen = false;
    try { reopen = sessionStorage.getItem(KEY + "open") === "1"; } catch (e) { /* ignore */ }
    // identify/track queued before the script loaded: identity first, so the session carries it.
    Array.prototype.forEach.call(queued, function (args) {
      try {
        api.apply(null, Array.prototype.slice.call(args));
      } catch (e) {
        console.error("[frontdesk]", e);
      }
    });
    if (reopen) widget.open();
    widget.start();
  }

  if (document.body) boot();
  else document.addEventListener("DOMContentLoaded", boot);
})();
