// The annotator's page: lease a comparison, show it, send the judgement, load the next
// one without reloading; bring the last one back to change its answer (u); review clips
// (pause, scrub, half speed); and, when nothing is left, look again by itself and say
// truthfully where new comparisons come from. Model outputs are untrusted: they are only
// ever set as text. conversation.js renders chat turns; feedback.js holds the project's
// feedback form (strength, ratings, critique, edit, both bad) and its keys.
(function () {
  "use strict";
  const root = document.getElementById("annotator");
  const slug = root.dataset.project;
  const reviseWindowMs = Number(root.dataset.reviseWindow || 0) * 1000;
  const $ = (id) => document.getElementById(id);
  // Read on every request: logging in again (in another tab) rotates the token.
  const csrf = () => decodeURIComponent((document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "");

  const POLL_FIRST_MS = 5000; // the "All done" card asks again after this long...
  const POLL_MAX_MS = 60000; // ...backing off to this while nothing changes
  const STEP_TEXT = {
    fit_reward_model: "fitting the reward model",
    improve_policy: "improving the policy",
    generate_comparisons: "generating new comparisons",
  };

  let current = null; // the comparison on screen, as the API returned it
  let shownAt = 0;
  let ranking = []; // item ids, best first, for K > 2
  let busy = false;
  let lastJudged = null; // {assignment, choice, answeredAt}: the comparison last answered, as shown
  let revising = false; // `current` is lastJudged shown again: the next answer is a PUT
  let screen = 0; // bumped whenever what is on screen changes; late answers for an old screen are dropped
  let pollTimer = null;
  let pollDelay = POLL_FIRST_MS;

  async function api(path, body, method = "POST") {
    const response = await fetch(path, {
      method,
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

  async function refreshProgress() {
    const r = await fetch(`/api/projects/${slug}/progress/`, { credentials: "same-origin" });
    if (r.ok) setProgress(await r.json());
  }

  // --- leasing and showing ----------------------------------------------------------------
  // quiet: a poll of the "All done" card, which keeps the card's message and never blocks keys.
  async function loadNext({ quiet = false } = {}) {
    const at = screen;
    if (!quiet) { busy = true; say(""); }
    try {
      const { status, data } = await api(`/api/projects/${slug}/next/`);
      if (at !== screen) return; // the page moved on (an undo, say) while this was asked
      if (status === 204) {
        await showDone();
      } else if (status === 200) {
        show(data);
      } else if (quiet) {
        schedulePoll();
      } else {
        say((data && data.detail) || `Could not load a comparison (HTTP ${status}).`, true);
      }
    } catch (e) {
      if (at !== screen) return;
      if (quiet) { schedulePoll(); return; }
      say("The server cannot be reached; retrying in 3 s.", true);
      setTimeout(loadNext, 3000);
    } finally {
      if (!quiet) busy = false;
    }
  }

  function show(a, { revision = false } = {}) {
    screen += 1;
    clearTimeout(pollTimer);
    current = a;
    revising = revision;
    ranking = [];
    $("done").hidden = true;
    $("task").hidden = false;
    $("revising").hidden = !revision;
    Conversation.renderPrompt($("prompt"), a.prompt);
    $("prompt").hidden = !a.prompt;
    document.querySelector(".prompt-label").hidden = !a.prompt;
    document.querySelector(".prompt-label").textContent = Array.isArray(a.prompt) ? "Conversation" : "Prompt";
    const box = $("candidates");
    box.replaceChildren();
    box.dataset.k = a.items.length;
    a.items.forEach((item, i) => box.appendChild(candidate(item, i)));
    Feedback.setUp(a, box, revision ? lastJudged.answer : null);
    const isPair = a.items.length === 2;
    $("pair-actions").hidden = !isPair;
    $("rank-actions").hidden = isPair;
    document.querySelectorAll("[data-choice]").forEach((b) =>
      b.classList.toggle("previous", revision && b.dataset.choice === lastJudged.choice)
    );
    renderRanking();
    if (!revision) setProgress(a.progress); // a brought-back comparison's progress is old
    ClipReview.setUp(box);
    updateUndoButton();
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
      el.appendChild(Conversation.response(item));
    }
    el.addEventListener("click", () => {
      if (current && current.items.length > 2) addToRanking(item.id);
    });
    return el;
  }

  // --- rankings ----------------------------------------------------------------------------
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
    Feedback.rankingChanged();
  }

  // --- answering, and changing the last answer -----------------------------------------------
  const describe = (choice) => (choice === "ranking" ? "a ranking" : `“${choice}”`);

  async function submit(body) {
    if (!current || busy) return;
    const feedback = Feedback.collect(body);
    if (feedback.error) { say(feedback.error, true); return; }
    Object.assign(body, feedback.fields);
    busy = true;
    const judged = current;
    const revision = revising;
    body.time_spent_ms = Math.round(performance.now() - shownAt);
    body.shown_order = judged.items.map((it) => it.id); // a stale page gets a 409, not a flip
    // The answer carries the next comparison: one round trip per judgement. After a
    // revision that is the comparison this page had (the lease it still holds).
    body.next = true;
    try {
      const { status, data } = await api(
        `/api/comparisons/${judged.id}/judgement/`, body, revision ? "PUT" : "POST"
      );
      busy = false;
      if (status === 200 || status === 201) {
        const answeredAt = revision ? lastJudged.answeredAt : status === 201 ? Date.now() : null;
        lastJudged = { assignment: judged, choice: data.choice, answeredAt, answer: data };
        say("");
        if (data.next) show(data.next);
        else await loadNext(); // nothing left: shows the done panel and the final progress
        if (revision) say(`Your answer to the previous comparison is now ${describe(data.choice)}.`);
      } else if (revision && status < 500 && status !== 400) { // a 400 stays, to be fixed
        if (status === 409) lastJudged = null; // too late to change: nothing left to undo
        await loadNext(); // back to the comparison this page had
        say((data && data.detail) || `Could not change the answer (HTTP ${status}).`, true);
      } else if (status === 409 || status === 403) {
        say((data && data.detail) || `HTTP ${status}`, true);
        current = null; // this one cannot be judged; ignore keys until the next arrives
        setTimeout(loadNext, 1500);
      } else {
        say((data && data.detail) || `Could not save (HTTP ${status}); press the key again.`, true);
        if (status === 400) Feedback.showInvalid(data && data.field);
      }
    } catch (e) {
      busy = false;
      say("The server cannot be reached; press the key again to retry.", true);
    }
    updateUndoButton();
  }

  // A choice key or button: sent at once, or (with a feedback form) picked until Enter.
  function choose(choice) {
    if (!Feedback.pick(choice)) submit({ choice });
  }

  // Enter (or the form's Send button): the picked choice, else a complete ranking.
  function confirmAnswer() {
    if (!current) return;
    if (Feedback.picked()) submit({ choice: Feedback.picked() });
    else if (current.items.length > 2 && ranking.length === current.items.length) submit({ ranking });
    else say(current.items.length === 2 ? "Pick an answer first: 1 (left), 2 (right) or 3 (tie)." : "Rank every candidate first.", true);
  }

  // u: show the last judged comparison again, its items in the order they were shown, so
  // the next answer replaces the stored one; u again goes back without changing it.
  function undo() {
    if (busy) return;
    if (revising) { revising = false; loadNext(); return; }
    if (!lastJudged) { say("Nothing to change yet: your last answer appears here once you give one."); return; }
    if (lastJudged.answeredAt !== null && Date.now() - lastJudged.answeredAt > reviseWindowMs) {
      say(`Your last answer was given more than ${Math.round(reviseWindowMs / 1000)} s ago; it can no longer be changed.`, true);
      lastJudged = null;
      updateUndoButton();
      return;
    }
    say("");
    show(lastJudged.assignment, { revision: true });
    $("revising").textContent = `Changing your answer to this comparison (it is ${describe(lastJudged.choice)}). ` +
      "Answer again to replace it, or press u to go back without changing it.";
  }

  function updateUndoButton() {
    const b = $("undo-last");
    if (!b) return; // revising is off in this project
    b.disabled = !(lastJudged || revising);
    b.textContent = revising ? "↷ Back without changing (u)" : "↶ Change last answer (u)";
  }

  // --- all done: look again by itself, and say where new comparisons come from ---------------
  async function showDone() {
    const arriving = $("done").hidden;
    screen += 1;
    const at = screen;
    current = null;
    revising = false;
    ClipReview.stop();
    $("task").hidden = true;
    $("revising").hidden = true;
    $("done").hidden = false;
    updateUndoButton();
    const [, training] = await Promise.all([refreshProgress().catch(() => {}), trainingStatus()]);
    if (at !== screen) return;
    explainDone(training);
    const active = training && training.round;
    pollDelay = arriving || active ? POLL_FIRST_MS : Math.min(pollDelay * 1.5, POLL_MAX_MS);
    schedulePoll();
  }

  async function trainingStatus() {
    try {
      const r = await fetch(`/api/projects/${slug}/training/`, { credentials: "same-origin" });
      return r.ok ? await r.json() : null;
    } catch (e) {
      return null;
    }
  }

  function explainDone(training) {
    const bar = $("done-bar");
    bar.hidden = true;
    let text = "New comparisons appear here when there are more.";
    if (training && !training.has_training) {
      text = "This project's comparisons are imported: new ones appear here when staff import more.";
    } else if (training && training.round) {
      const r = training.round;
      const pct = Math.round(100 * (r.progress || 0));
      if (r.status === "running") {
        text = `Round ${r.number} is training: ${STEP_TEXT[r.step] || "working"}, ${pct}%. ` +
          "Its new comparisons appear here when it finishes.";
        bar.hidden = false;
        bar.firstElementChild.style.width = `${pct}%`;
      } else {
        text = `Round ${r.number} is queued for training; its new comparisons appear here when it finishes.`;
      }
    } else if (training) {
      const n = training.judgements_to_next_round;
      text = n > 0
        ? `New comparisons appear after the next training round, which starts after ${n} more judgement${n === 1 ? "" : "s"} in this project (by anyone).`
        : "New comparisons appear after the next training round.";
    }
    $("done-reason").textContent = text;
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(() => {
      pollTimer = null;
      if (!$("done").hidden) loadNext({ quiet: true });
    }, pollDelay);
  }

  document.addEventListener("visibilitychange", () => {
    // Timers are slowed in a hidden tab: look at once when it is shown again.
    if (!document.hidden && !$("done").hidden) { pollDelay = POLL_FIRST_MS; loadNext({ quiet: true }); }
  });

  // --- instructions: open on a project's first visit, collapsed afterwards -------------------
  function openInstructionsOnFirstVisit() {
    if (root.dataset.hasInstructions !== "1") return;
    const key = `instructions-seen:${slug}`;
    let seen = false;
    try {
      seen = localStorage.getItem(key) === "1";
      localStorage.setItem(key, "1");
    } catch (e) {
      seen = false; // no storage (a private window, say): show them every time
    }
    $("instructions").hidden = seen;
  }

  function toggle(id) { $(id).hidden = !$(id).hidden; }

  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input:not([type=range]), textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "?") { toggle("help"); return; }
    if ((e.key === "u" || e.key === "U") && reviseWindowMs > 0) { e.preventDefault(); undo(); return; }
    if (e.key === "p" || e.key === "P") { if (ClipReview.active()) { e.preventDefault(); ClipReview.togglePaused(); } return; }
    if (e.key === "h" || e.key === "H") { if (ClipReview.active()) { e.preventDefault(); ClipReview.toggleHalfSpeed(); } return; }
    if (!current) return;
    if (Feedback.onKey(e)) return;
    const k = current.items.length;
    if (e.key === "s" || e.key === "S") { e.preventDefault(); submit({ choice: "skip" }); return; }
    if ((e.key === "b" || e.key === "B") && Feedback.offersBothBad()) { e.preventDefault(); choose("both_bad"); return; }
    if (e.key === "Enter" && Feedback.holds() && (k === 2 || Feedback.picked())) { e.preventDefault(); confirmAnswer(); return; }
    if (k === 2) {
      const choice = { "1": "left", ArrowLeft: "left", "2": "right", ArrowRight: "right", "3": "tie", " ": "tie" }[e.key];
      if (choice) { e.preventDefault(); choose(choice); }
      return;
    }
    const n = Number(e.key);
    if (Number.isInteger(n) && n >= 1 && n <= k) { e.preventDefault(); addToRanking(current.items[n - 1].id); }
    else if (e.key === "Backspace") { e.preventDefault(); ranking = ranking.slice(0, Math.max(0, Math.min(ranking.length, k - 1) - 1)); renderRanking(); }
    else if (e.key === "Enter" && ranking.length === k) { e.preventDefault(); submit({ ranking }); }
  });

  // A mouse click leaves a button focused, and a later Enter or space would click it again.
  const clicked = (b, action) => b.addEventListener("click", (e) => { if (e.detail > 0) b.blur(); action(); });
  document.querySelectorAll("[data-choice]").forEach((b) => clicked(b, () => choose(b.dataset.choice)));
  Feedback.init({ ranking: () => ranking, confirm: confirmAnswer, say });
  $("rank-submit").addEventListener("click", () => submit({ ranking }));
  $("rank-undo").addEventListener("click", () => { ranking = ranking.slice(0, Math.max(0, Math.min(ranking.length, current.items.length - 1) - 1)); renderRanking(); });
  if ($("undo-last")) clicked($("undo-last"), undo);
  clicked($("clip-play"), ClipReview.togglePaused);
  clicked($("clip-half"), ClipReview.toggleHalfSpeed);
  $("clip-scrub").addEventListener("input", () => ClipReview.scrub(Number($("clip-scrub").value)));
  $("clip-scrub").addEventListener("change", () => $("clip-scrub").blur()); // keys judge again
  $("toggle-help").addEventListener("click", () => toggle("help"));
  $("toggle-instructions").addEventListener("click", () => toggle("instructions"));
  $("check-again").addEventListener("click", () => { pollDelay = POLL_FIRST_MS; loadNext(); });

  openInstructionsOnFirstVisit();
  if (root.dataset.member !== "1") {
    say("You can see this project but are not one of its annotators; ask an admin to add you.", true);
  } else {
    loadNext();
  }
})();
