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
    follow(url, (html) => {
      card.innerHTML = html;
      card.classList.remove("popped");
      void card.offsetWidth; // restart the pop-up animation
      card.classList.add("popped");
    });
    return;
  }

  if (page !== "console") return;

  let drawn = null;
  let drawing = 0;
  async function draw() {
    const source = document.getElementById("diagram-source").textContent;
    const target = document.getElementById("diagram");
    if (!window.mermaid || source === drawn || !source.trim()) return;
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
