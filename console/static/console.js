/* Agent console: keeps the inbox and the open conversation (and its claim) up to date.
 * The server renders the inbox rows (escaped HTML); the transcript is built
 * from JSON with textContent. A 401 means the session ended: reload to sign in.
 */
(function () {
  "use strict";

  function get(url) {
    return fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin",
                        cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r;
      });
  }

  var rows = document.getElementById("inbox-rows");
  if (rows) {
    window.setInterval(function () {
      get(rows.dataset.refresh).then(function (r) { return r.text(); })
        .then(function (html) { rows.innerHTML = html; })
        .catch(function () { /* try again at the next tick */ });
    }, 3000);
  }

  var transcript = document.getElementById("transcript");
  if (transcript) {
    var statusEl = document.getElementById("esc-status");
    var shown = transcript.querySelectorAll("li.msg").length;
    var lastStatus = statusEl ? statusEl.textContent.trim() : "";
    var claimEl = document.getElementById("claim");
    var claimedBy = claimEl ? claimEl.dataset.claimedBy : "";

    var render = function (messages) {
      transcript.textContent = "";
      messages.forEach(function (m) {
        var li = document.createElement("li");
        li.className = "msg from-" + m.from;
        var who = document.createElement("span");
        who.className = "who";
        who.textContent = m.from;
        li.appendChild(who);
        if (m.sentiment) {
          var tag = document.createElement("span");
          tag.className = "tag sentiment-" + m.sentiment;
          tag.textContent = m.sentiment;
          li.appendChild(tag);
        }
        var text = document.createElement("span");
        text.className = "text";
        text.textContent = m.text;
        li.appendChild(text);
        transcript.appendChild(li);
      });
      transcript.scrollTop = transcript.scrollHeight;
    };
    transcript.scrollTop = transcript.scrollHeight;

    window.setInterval(function () {
      get(transcript.dataset.live).then(function (r) { return r.json(); })
        .then(function (data) {
          if (data.messages.length !== shown) {
            render(data.messages);
            shown = data.messages.length;
          }
          var holder = data.claimed_by === null || data.claimed_by === undefined
            ? "" : String(data.claimed_by);
          if (claimEl && holder !== claimedBy) {
            // Another agent claimed, took over or released the thread: show it.
            window.location.reload();
            return;
          }
          if (statusEl && data.status !== lastStatus) {
            lastStatus = data.status;
            statusEl.textContent = data.status;
            if (data.status === "resolved") { window.location.reload(); }
          }
        })
        .catch(function () { /* try again at the next tick */ });
    }, 2000);
  }
})();
