// Live status of the newest round: polls the API every two seconds while one is active.
(function () {
  "use strict";
  const root = document.getElementById("dashboard");
  const slug = root.dataset.project;
  const $ = (id) => document.getElementById(id);
  const csrf = () => decodeURIComponent((document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "");
  let wasActive = false;

  async function refresh() {
    let rounds = [];
    try {
      const r = await fetch(`/api/projects/${slug}/rounds/`, { credentials: "same-origin" });
      if (r.ok) rounds = await r.json();
    } catch (e) { /* keep polling */ }
    const current = rounds[0];
    if (!current) {
      $("live-status").textContent = "No rounds yet.";
    } else {
      const pct = Math.round(current.progress * 100);
      $("live-status").textContent = `Round ${current.number}: ${current.status} (${pct}%)` + (current.error ? ` — ${current.error}` : "");
      $("live-bar").style.width = `${pct}%`;
      $("live-steps").replaceChildren(...current.steps.map((s) => {
        const li = document.createElement("li");
        li.textContent = `${s.kind.replace(/_/g, " ")}: ${s.status} (${Math.round(s.progress * 100)}%)`;
        li.className = s.status;
        return li;
      }));
    }
    const active = current && (current.status === "queued" || current.status === "running");
    $("start-round").disabled = !!active;
    if (wasActive && !active) window.location.reload(); // new curves
    wasActive = !!active;
    setTimeout(refresh, active ? 2000 : 10000);
  }

  $("start-round").addEventListener("click", async () => {
    const r = await fetch(`/api/projects/${slug}/rounds/`, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf() },
    });
    const body = await r.json().catch(() => ({}));
    $("start-message").textContent = r.ok ? `Round ${body.number} queued.` : (body.detail || `HTTP ${r.status}`);
    refresh();
  });
  refresh();
})();
