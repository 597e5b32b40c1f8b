// The annotator's page: lease a comparison, show it, send the judgement, load the next
// one without reloading. Model outputs are untrusted: they are only ever set as text.
(function () {
  "use strict";
  const root = document.getElementById("annotator");
  const slug = root.dataset.project;
  const $ = (id) => document.getElementById(id);
  // Read on every request: logging in again (in another tab) rotates the token.
  const csrf = () => decodeURIComponent((document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "");

  let current = null; // the leased comparison, as the API returned it
  let shownAt = 0;
  let ranking = []; // item ids, best first, for K > 2
  let busy = false;

  async function api(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (e) { data = null; }
    }
    return { status: response.status, data };
  }

  function say(text, isError) {
    const m = $("message");
    m.textContent = text || "";
    m.hidden = !text;
    m.classList.toggle("error", !!isError);
  }

  function setProgress(p) {
    if (p) $("progress").textContent = `Judged ${p.judged} · Remaining ${p.remaining}`;
  }

  async function loadNext() {
    busy = true;
    say("");
    try {
      const { status, data } = await api(`/api/projects/${slug}/next/`);
      if (status === 204) {
        current = null;
        $("task").hidden = true;
        $("done").hidden = false;
        const r = await fetch(`/api/projects/${slug}/progress/`, { credentials: "same-origin" });
        if (r.ok) setProgress(await r.json());
        return;
      }
      if (status !== 200) {
        say((data && data.detail) || `Could not load a comparison (HTTP ${status}).`, true);
        return;
      }
      show(data);
    } catch (e) {
      say("The server cannot be reached; retrying in 3 s.", true);
      setTimeout(loadNext, 3000);
    } finally {
      busy = false;
    }
  }

  function show(a) {
    current = a;
    ranking = [];
    $("done").hidden = true;
    $("task").hidden = false;
    $("prompt").textContent = a.prompt || "";
    $("prompt").hidden = !a.prompt;
    document.querySelector(".prompt-label").hidden = !a.prompt;
    const box = $("candidates");
    box.replaceChildren();
    box.dataset.k = a.items.length;
    a.items.forEach((item, i) => box.appendChild(candidate(item, i)));
    const isPair = a.items.length === 2;
    $("pair-actions").hidden = !isPair;
    $("rank-actions").hidden = isPair;
    renderRanking();
    setProgress(a.progress);
    syncClips(box);
    shownAt = performance.now();
  }

  function candidate(item, i) {
    const el = document.createElement("article");
    el.className = "candidate";
    el.dataset.itemId = item.id;
    const head = document.createElement("header");
    const label = current.items.length === 2 ? (i === 0 ? "Left" : "Right") : `Candidate ${i + 1}`;
    head.textContent = `${i + 1} · ${label}`;
    const rank = document.createElement("span");
    rank.className = "rank-badge";
    head.appendChild(rank);
    el.appendChild(head);
    if (item.clip_url) {
      const video = document.createElement("video");
      video.src = item.clip_url;
      if (item.poster_url) video.poster = item.poster_url;
      video.muted = true;
      video.loop = true;
      video.playsInline = true;
      video.preload = "auto";
      el.appendChild(video);
    } else {
      const body = document.createElement("div");
      body.className = "response";
      body.textContent = item.text;
      el.appendChild(body);
    }
    el.addEventListener("click", () => {
      if (current && current.items.length > 2) addToRanking(item.id);
    });
    return el;
  }

  // Clips of one comparison start together and stay within 0.1 s of the first.
  function syncClips(box) {
    const videos = Array.from(box.querySelectorAll("video"));
    if (!videos.length) return;
    let ready = 0;
    videos.forEach((v) =>
      v.addEventListener("canplay", function once() {
        v.removeEventListener("canplay", once);
        ready += 1;
        if (ready === videos.length) videos.forEach((w) => { w.currentTime = 0; w.play().catch(() => {}); });
      })
    );
    videos[0].addEventListener("timeupdate", () => {
      const t = videos[0].currentTime;
      videos.slice(1).forEach((w) => { if (Math.abs(w.currentTime - t) > 0.1) w.currentTime = t; });
    });
  }

  function addToRanking(id) {
    if (ranking.includes(id)) return;
    ranking.push(id);
    if (ranking.length === current.items.length - 1) {
      // the last one is implied
      current.items.forEach((it) => { if (!ranking.includes(it.id)) ranking.push(it.id); });
    }
    renderRanking();
  }

  function renderRanking() {
    if (!current) return;
    const list = $("ranking");
    list.replaceChildren();
    const pos = new Map(current.items.map((it, i) => [it.id, i]));
    ranking.forEach((id, r) => {
      const li = document.createElement("li");
      li.draggable = true;
      li.dataset.itemId = id;
      li.textContent = `Candidate ${pos.get(id) + 1}`;
      li.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/plain", String(r)));
      li.addEventListener("dragover", (e) => e.preventDefault());
      li.addEventListener("drop", (e) => {
        e.preventDefault();
        const from = Number(e.dataTransfer.getData("text/plain"));
        const [moved] = ranking.splice(from, 1);
        ranking.splice(r, 0, moved);
        renderRanking();
      });
      list.appendChild(li);
    });
    document.querySelectorAll(".candidate").forEach((el) => {
      const r = ranking.indexOf(Number(el.dataset.itemId));
      el.querySelector(".rank-badge").textContent = r >= 0 ? ` — ranked #${r + 1}` : "";
      el.classList.toggle("ranked", r >= 0);
    });
    $("rank-submit").disabled = ranking.length !== current.items.length;
  }

  async function submit(body) {
    if (!current || busy) return;
    busy = true;
    body.time_spent_ms = Math.round(performance.now() - shownAt);
    body.shown_order = current.items.map((it) => it.id); // a stale page gets a 409, not a flip
    body.next = true; // the answer carries the next comparison: one round trip per judgement
    try {
      const { status, data } = await api(`/api/comparisons/${current.id}/judgement/`, body);
      busy = false;
      if ((status === 200 || status === 201) && data && data.next) {
        show(data.next);
      } else if (status === 200 || status === 201) {
        await loadNext(); // nothing left: shows the done panel and the final progress
      } else if (status === 409 || status === 403) {
        say((data && data.detail) || `HTTP ${status}`, true);
        current = null; // this one cannot be judged; ignore keys until the next arrives
        setTimeout(loadNext, 1500);
      } else {
        say((data && data.detail) || `Could not save (HTTP ${status}); press the key again.`, true);
      }
    } catch (e) {
      busy = false;
      say("The server cannot be reached; press the key again to retry.", true);
    }
  }

  function toggle(id) { $(id).hidden = !$(id).hidden; }

  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "?") { toggle("help"); return; }
    if (!current) return;
    const k = current.items.length;
    if (e.key === "s" || e.key === "S") { e.preventDefault(); submit({ choice: "skip" }); return; }
    if (k === 2) {
      const choice = { "1": "left", ArrowLeft: "left", "2": "right", ArrowRight: "right", "3": "tie", " ": "tie" }[e.key];
      if (choice) { e.preventDefault(); submit({ choice }); }
      return;
    }
    const n = Number(e.key);
    if (Number.isInteger(n) && n >= 1 && n <= k) { e.preventDefault(); addToRanking(current.items[n - 1].id); }
    else if (e.key === "Backspace") { e.preventDefault(); ranking = ranking.slice(0, Math.max(0, Math.min(ranking.length, k - 1) - 1)); renderRanking(); }
    else if (e.key === "Enter" && ranking.length === k) { e.preventDefault(); submit({ ranking }); }
  });

  document.querySelectorAll("[data-choice]").forEach((b) =>
    b.addEventListener("click", (e) => {
      // A mouse click leaves the button focused, and a later Enter would click it again.
      if (e.detail > 0) b.blur();
      submit({ choice: b.dataset.choice });
    })
  );
  $("rank-submit").addEventListener("click", () => submit({ ranking }));
  $("rank-undo").addEventListener("click", () => { ranking = ranking.slice(0, Math.max(0, Math.min(ranking.length, current.items.length - 1) - 1)); renderRanking(); });
  $("toggle-help").addEventListener("click", () => toggle("help"));
  $("toggle-instructions").addEventListener("click", () => toggle("instructions"));
  $("check-again").addEventListener("click", loadNext);

  if (root.dataset.member !== "1") {
    say("You can see this project but are not one of its annotators; ask an admin to add you.", true);
  } else {
    loadNext();
  }
})();
