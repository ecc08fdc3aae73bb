/* The customers' web chat on Rasa's socket.io channel (bot/webchat.py).
 *
 * - One conversation per browser and identity: the session id is kept in
 *   localStorage and asked for again after every (re)connect, so a dropped
 *   connection resumes the same conversation (Rasa puts the socket back in the
 *   session's room, where an agent's replies are pushed during a handoff).
 * - A signed identity, when the page has one, goes with every message as
 *   metadata (`customData: {auth: {user, sig}}`).
 * - Text is always inserted as text, never as HTML.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("chat-config").textContent);
  var root = document.getElementById("chat");
  var log = document.getElementById("chat-log");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-input");
  var statusEl = document.getElementById("chat-status");
  var storeKey = "crm-chat:" + (config.user || "guest");
  var MAX_KEPT = 200;

  function loadState() {
    try {
      var saved = JSON.parse(window.localStorage.getItem(storeKey) || "null");
      if (saved && typeof saved === "object") {
        return { session_id: saved.session_id || null, messages: saved.messages || [] };
      }
    } catch (e) { /* private mode or corrupt: start afresh */ }
    return { session_id: null, messages: [] };
  }
  var state = loadState();
  var confirmed = false;
  var pending = [];

  function saveState() {
    state.messages = state.messages.slice(-MAX_KEPT);
    try { window.localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* ignore */ }
  }

  function setStatus(name, label) {
    statusEl.dataset.state = name;
    statusEl.textContent = label;
    root.dataset.state = name;
  }

  function safeUrl(url) {
    return typeof url === "string" && /^(https?:|data:image\/|\/)/i.test(url) ? url : null;
  }

  function scroll() { log.scrollTop = log.scrollHeight; }

  function renderUser(text) {
    var li = document.createElement("li");
    li.className = "msg from-user";
    li.textContent = text;
    log.appendChild(li);
    scroll();
  }

  function renderBot(msg, live) {
    var li = document.createElement("li");
    li.className = "msg from-bot";
    if (msg.agent) {  // a person from support (when the server marks it)
      li.className += " from-agent";
      var who = document.createElement("div");
      who.className = "who small";
      who.textContent = typeof msg.agent === "string" ? msg.agent : "Support agent";
      li.appendChild(who);
    }
    if (msg.text) {
      var p = document.createElement("div");
      p.className = "text";
      p.textContent = msg.text;
      li.appendChild(p);
    }
    var attachment = msg.attachment;
    var image = msg.image || (attachment && attachment.type === "image" && attachment.payload &&
                              attachment.payload.src);
    if (safeUrl(image)) {
      var img = document.createElement("img");
      img.src = safeUrl(image);
      img.alt = "image from the assistant";
      img.className = "chat-image";
      img.addEventListener("load", scroll);
      li.appendChild(img);
    }
    var buttons = msg.quick_replies || msg.buttons || [];
    if (buttons.length) {
      var box = document.createElement("div");
      box.className = "buttons";
      buttons.forEach(function (b) {
        var btn = document.createElement("button");
        btn.type = "button";
        btn.className = "chat-button";
        btn.textContent = b.title || b.payload;
        btn.disabled = !live;
        btn.addEventListener("click", function () {
          Array.prototype.forEach.call(box.querySelectorAll("button"), function (x) {
            x.disabled = true;
          });
          send(b.title || b.payload, b.payload || b.title);
        });
        box.appendChild(btn);
      });
      li.appendChild(box);
    }
    if (li.childNodes.length) {
      log.appendChild(li);
      scroll();
    }
  }

  function remember(kind, msg) {
    state.messages.push({ kind: kind, msg: msg });
    saveState();
  }

  // Earlier messages of this conversation (the page was reloaded).
  state.messages.forEach(function (item) {
    if (item.kind === "user") { renderUser(item.msg); } else { renderBot(item.msg, false); }
  });

  var socket = window.io(config.server, {
    path: config.path,
    transports: ["websocket"],
    reconnection: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 4000,
    timeout: 10000
  });

  function emitMessage(message) {
    var data = { message: message, session_id: state.session_id };
    if (config.auth) { data.customData = { auth: config.auth }; }
    socket.emit("user_uttered", data);
  }

  function send(shown, payload) {
    var text = (payload || shown || "").trim();
    if (!text) { return; }
    renderUser(shown);
    remember("user", shown);
    if (confirmed && socket.connected) {
      emitMessage(text);
    } else {
      pending.push(text);  // sent once the session is confirmed again
    }
  }

  socket.on("connect", function () {
    confirmed = false;
    setStatus("joining", "connecting…");
    socket.emit("session_request", { session_id: state.session_id });
  });

  socket.on("session_confirm", function (data) {
    var sessionId = (data && typeof data === "object") ? data.session_id : data;
    if (typeof sessionId !== "string" || !sessionId) { return; }
    state.session_id = sessionId;
    root.dataset.session = sessionId;
    saveState();
    confirmed = true;
    setStatus("online", "online");
    while (pending.length) { emitMessage(pending.shift()); }
  });

  socket.on("bot_uttered", function (msg) {
    if (!msg || typeof msg !== "object") { return; }
    renderBot(msg, true);
    remember("bot", msg);
  });

  socket.on("disconnect", function () {
    confirmed = false;
    setStatus("offline", "reconnecting…");
  });

  socket.on("connect_error", function () {
    setStatus("offline", "reconnecting…");
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    input.value = "";
    send(text, text);
    input.focus();
  });

  // For tests and support staff: the conversation's id is visible in the DOM.
  if (state.session_id) { root.dataset.session = state.session_id; }
  window.crmChat = { socket: socket, state: state };
})();
