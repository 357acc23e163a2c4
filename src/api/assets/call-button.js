// ringback "call us" button for any web page:
//   <script src="https://ringback.example/assets/call-button.js"
//           data-number="2000" data-topic="checkout" data-label="Call us"></script>
// It adds a button that opens ringback's /call page in a small window (on
// ringback's own origin, so the page's microphone permission and the API's
// Host/Origin checks stay ringback's).
"use strict";
(() => {
  const me = document.currentScript;
  if (!me) return;
  const base = new URL(me.src).origin;
  const number = me.dataset.number || "";
  const q = new URLSearchParams({ number });
  if (me.dataset.topic) q.set("topic", me.dataset.topic);
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = me.dataset.label || "Call us";
  b.className = "ringback-call-button";
  b.addEventListener("click", () => {
    window.open(`${base}/call?${q}`, "ringback-call", "width=420,height=560");
  });
  me.after(b);
})();
