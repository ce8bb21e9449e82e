// Concierge live console and call widget. The server renders every piece of markup (its
// templates escape all data); this script only swaps in the fragments that Server-Sent
// Events bring, draws the flow diagram with the vendored Mermaid, and sends the reload.
"use strict";

(function () {
  const page = document.body.dataset.page;

  // EventSource reconnects by itself; each (re)connect starts with the current state.
  function follow(url, onMessage) {
    const source = new EventSource(url);
    source.addEventListener("update", (e) => onMessage(e.data));
    return source;
  }

  if (page === "widget") {
    const card = document.getElementById("card");
    if (!card || card.dataset.live !== "true") return;
    const desk = card.dataset.desk;
    const url = "/events/widget" + (desk ? "?desk=" + encodeURIComponent(desk) : "");
    const callOf = (root) => {
      const el = root.querySelector("[data-call]");
      return el ? el.dataset.call : null;
    };
    follow(url, (html) => {
      const before = callOf(card);
      card.innerHTML = html;
      // The first update after (re)connecting repeats the card shown: no pop-up for it.
      if (callOf(card) === before) return;
      card.classList.remove("popped");
      void card.offsetWidth; // restart the pop-up animation
      card.classList.add("popped");
    });
    return;
  }

  if (page !== "console") return;

  // Drawing a diagram costs the browser; counts that change often redraw it at most
  // every two seconds (the table beside it is exact at every update).
  let drawn = null;
  let drawing = 0;
  let lastDraw = 0;
  let pending = null;
  async function draw() {
    const source = document.getElementById("diagram-source").textContent;
    const target = document.getElementById("diagram");
    if (!window.mermaid || source === drawn || !source.trim()) return;
    const wait = lastDraw + 2000 - Date.now();
    if (wait > 0) {
      if (!pending) pending = setTimeout(() => { pending = null; draw(); }, wait);
      return;
    }
    lastDraw = Date.now();
    drawn = source;
    drawing += 1;
    try {
      const { svg } = await window.mermaid.render("flow-diagram-" + drawing, source);
      target.innerHTML = svg;
    } catch (err) {
      target.textContent = "The diagram could not be drawn: " + err;
    }
  }

  window.addEventListener("load", () => {
    if (window.mermaid) {
      window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
    }
    draw();
  });

  follow("/events/console" + window.location.search, (data) => {
    const parts = JSON.parse(data);
    for (const id of ["live", "counts", "today", "records", "status"]) {
      const el = document.getElementById(id);
      if (el && typeof parts[id] === "string") el.innerHTML = parts[id];
    }
    if (typeof parts.diagram === "string") {
      document.getElementById("diagram-source").textContent = parts.diagram;
      draw();
    }
  });

  const button = document.getElementById("reload");
  const result = document.getElementById("reload-result");
  button.addEventListener("click", async () => {
    button.disabled = true;
    result.className = "";
    result.textContent = "Checking and reloading…";
    const csrf = document.querySelector('meta[name="csrf"]').content;
    try {
      const response = await fetch("/reload", {
        method: "POST",
        headers: { "X-Concierge-Csrf": csrf },
        credentials: "same-origin",
      });
      const body = await response.json();
      result.textContent = "";
      const head = document.createElement("p");
      head.textContent = body.message;
      result.appendChild(head);
      if (Array.isArray(body.problems) && body.problems.length) {
        const list = document.createElement("ul");
        for (const p of body.problems) {
          const item = document.createElement("li");
          item.textContent = p;
          list.appendChild(item);
        }
        result.appendChild(list);
      }
      result.className = body.applied ? "ok" : "bad";
    } catch (err) {
      result.textContent = "No answer from the server: " + err;
      result.className = "bad";
    } finally {
      button.disabled = false;
    }
  });
})();
