// The feedback form on the annotator's page, as a project's config asks for it (`feedback`
// and `criteria` of `next`): how much better a pair's winner is (↑ / ↓), ratings of each
// candidate on each criterion (Shift+1..7 rates the highlighted row; r / Shift+r move the
// highlight), a critique (c), an improved text of the winner (e), and "both bad" (b).
//
// With any of strength, ratings, critique or edit asked for, 1 / 2 / 3 / b only pick the
// answer and Enter sends it with the feedback; a required part left out blocks the send
// and says what is missing. annotate.js owns leasing, sending and the other keys, and asks
// this module for the fields to send (collect) and whether a pick waits for Enter (holds).
window.Feedback = (function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const STRENGTHS = ["slight", "clear", "strong"];
  const RATING_MIN = 1;
  const RATING_MAX = 7;

  let hooks = { ranking: () => [], confirm: () => {}, say: () => {} };
  let form = {}; // the project's form: {part: "optional" | "required", both_bad: bool}
  let criteria = [];
  let items = [];
  let picked = null; // the choice waiting for Enter: left, right, tie or both_bad
  let strength = "";
  let ratings = {}; // {item id: {criterion: 1..7}}
  let rows = []; // one per (candidate, criterion), in reading order: {itemId, criterion, el}
  let cursor = 0; // the highlighted row, which Shift+1..7 rates
  let editOf = null; // the item whose text the editor started from
  let editStart = ""; // ...and that text

  const asks = (part) => form[part] === "optional" || form[part] === "required";
  const isPair = () => items.length === 2;
  const holds = () => ["strength", "ratings", "critique", "edit"].some(asks);
  const offersBothBad = () => form.both_bad === true;
  const label = (id) => {
    const i = items.findIndex((it) => it.id === id);
    return isPair() ? (i === 0 ? "Left" : "Right") : `Candidate ${i + 1}`;
  };

  function init(h) {
    hooks = { ...hooks, ...h };
    document.querySelectorAll("#strength-row [data-strength]").forEach((b) =>
      b.addEventListener("click", () => setStrength(strength === b.dataset.strength ? "" : b.dataset.strength))
    );
    $("open-critique").addEventListener("click", openCritique);
    $("open-edit").addEventListener("click", openEdit);
    $("feedback-submit").addEventListener("click", () => hooks.confirm());
    $("critique").addEventListener("input", countCritique);
    ["critique", "edit-text"].forEach((id) => $(id).addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.preventDefault(); $(id).blur(); }
      else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $(id).blur(); hooks.confirm(); }
    }));
  }

  // A new comparison on screen (`box` holds its candidates); `previous` is the stored
  // answer when it is brought back to be changed, whose feedback is filled in again.
  function setUp(assignment, box, previous) {
    form = assignment.feedback || {};
    criteria = assignment.criteria && assignment.criteria.length ? assignment.criteria : ["overall"];
    items = assignment.items;
    picked = null;
    strength = "";
    ratings = {};
    rows = [];
    cursor = 0;
    editOf = null;
    editStart = "";
    $("critique").value = "";
    $("edit-text").value = "";
    $("critique-box").hidden = true;
    $("edit-box").hidden = true;
    if (asks("ratings")) box.querySelectorAll("article.candidate").forEach((el) => el.appendChild(ratingRows(el)));
    $("ratings-hint").hidden = !asks("ratings");
    $("strength-row").hidden = !(asks("strength") && isPair());
    $("open-critique").hidden = !asks("critique");
    $("open-edit").hidden = !asks("edit");
    $("feedback-submit").hidden = !(holds() && isPair());
    $("feedback").hidden = !holds();
    document.querySelectorAll("[data-choice=both_bad]").forEach((b) => { b.hidden = !offersBothBad(); });
    document.querySelectorAll(".feedback .invalid, .candidate .invalid").forEach((el) => el.classList.remove("invalid"));
    if (previous) restore(previous);
    renderPicked();
    renderStrength();
    renderRatings();
    countCritique();
  }

  function restore(previous) {
    if (holds() && previous.choice !== "ranking" && previous.choice !== "skip") picked = previous.choice;
    strength = previous.strength || "";
    Object.entries(previous.ratings || {}).forEach(([id, byCriterion]) => { ratings[Number(id)] = { ...byCriterion }; });
    if (previous.critique) { $("critique").value = previous.critique; $("critique-box").hidden = false; }
    const winner = winnerId();
    if (previous.edit && winner !== null) {
      editOf = winner;
      editStart = Conversation.finalText(items.find((it) => it.id === winner));
      $("edit-text").value = previous.edit.text;
      $("edit-box").hidden = false;
      $("edit-of").textContent = label(winner);
    }
    const next = rows.findIndex((r) => !rated(r));
    cursor = next >= 0 ? next : 0;
  }

  // --- picking the answer, and how much better ------------------------------------------
  // Whether `choice` is held for Enter (true) or is to be sent at once (false, as without a form).
  function pick(choice) {
    if (!holds() || choice === "skip") return false;
    picked = choice;
    renderPicked();
    followWinner();
    return true;
  }

  function renderPicked() {
    document.querySelectorAll("#pair-actions [data-choice], #rank-actions [data-choice]").forEach((b) => {
      const on = holds() && b.dataset.choice === picked;
      b.classList.toggle("picked", on);
      if (holds() && b.dataset.choice !== "skip") b.setAttribute("aria-pressed", String(on));
      else b.removeAttribute("aria-pressed");
    });
  }

  function setStrength(value) {
    strength = value;
    $("strength-row").classList.remove("invalid");
    renderStrength();
  }

  function renderStrength() {
    document.querySelectorAll("#strength-row [data-strength]").forEach((b) => {
      b.setAttribute("aria-pressed", String(b.dataset.strength === strength));
    });
  }

  // ↑ one step stronger (from none to slight), ↓ one step weaker (back to none).
  function stepStrength(delta) {
    const at = STRENGTHS.indexOf(strength) + delta; // none is -1
    setStrength(at < 0 ? "" : STRENGTHS[Math.min(at, STRENGTHS.length - 1)]);
  }

  // --- ratings --------------------------------------------------------------------------------
  function ratingRows(article) {
    const itemId = Number(article.dataset.itemId);
    const block = document.createElement("div");
    block.className = "ratings";
    criteria.forEach((criterion) => {
      const row = document.createElement("div");
      row.className = "rating-row";
      row.dataset.criterion = criterion;
      row.setAttribute("role", "group");
      row.setAttribute("aria-label", `Rate ${label(itemId)} on ${criterion}, ${RATING_MIN} to ${RATING_MAX}`);
      const name = document.createElement("span");
      name.className = "criterion";
      name.textContent = criterion;
      row.appendChild(name);
      const at = rows.length;
      for (let n = RATING_MIN; n <= RATING_MAX; n++) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "rate";
        b.dataset.value = String(n);
        b.textContent = String(n);
        b.addEventListener("click", (e) => {
          e.stopPropagation(); // a click on a candidate of a ranking ranks it
          if (e.detail > 0) b.blur();
          cursor = at;
          rate(n);
        });
        row.appendChild(b);
      }
      row.addEventListener("focusin", () => { cursor = at; renderRatings(); });
      row.addEventListener("click", (e) => e.stopPropagation());
      rows.push({ itemId, criterion, el: row });
      block.appendChild(row);
    });
    return block;
  }

  const rated = (r) => ratings[r.itemId] && ratings[r.itemId][r.criterion] !== undefined;

  // Rate the highlighted row, then move the highlight to the next row without a rating.
  function rate(n) {
    const r = rows[cursor];
    if (!r) return;
    ratings[r.itemId] = { ...(ratings[r.itemId] || {}), [r.criterion]: n };
    r.el.classList.remove("invalid");
    for (let step = 1; step < rows.length; step++) {
      const at = (cursor + step) % rows.length;
      if (!rated(rows[at])) { cursor = at; break; }
    }
    renderRatings();
  }

  function moveCursor(delta) {
    if (!rows.length) return;
    cursor = (cursor + delta + rows.length) % rows.length;
    renderRatings();
    rows[cursor].el.scrollIntoView({ block: "nearest" });
  }

  function renderRatings() {
    rows.forEach((r, i) => {
      r.el.classList.toggle("current", i === cursor);
      const value = rated(r) ? ratings[r.itemId][r.criterion] : null;
      r.el.querySelectorAll(".rate").forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.value) === value)));
    });
    document.querySelectorAll("article.candidate").forEach((el) =>
      el.classList.toggle("rating-focus", !!rows[cursor] && rows[cursor].itemId === Number(el.dataset.itemId))
    );
  }

  // --- critique and edit ------------------------------------------------------------------------
  function openCritique() {
    $("critique-box").hidden = false;
    $("critique").focus();
  }

  function countCritique() {
    $("critique-count").textContent = `${$("critique").value.length} / ${$("critique").maxLength}`;
  }

  // The winner as the answer stands: the picked side of a pair, or the top of a ranking.
  function winnerId() {
    if (!items.length) return null;
    if (isPair()) return picked === "left" ? items[0].id : picked === "right" ? items[1].id : null;
    const ranking = hooks.ranking();
    return ranking.length ? ranking[0] : null;
  }

  function openEdit() {
    const winner = winnerId();
    if (winner === null) {
      hooks.say(isPair() ? "Pick the better answer first (1 or 2), then press e to edit it."
        : "Rank the best candidate first, then press e to edit it.", true);
      return;
    }
    if (!editTouched()) startEdit(winner);
    $("edit-box").hidden = false;
    $("edit-text").focus();
  }

  function startEdit(winner) {
    editOf = winner;
    editStart = Conversation.finalText(items.find((it) => it.id === winner));
    $("edit-text").value = editStart;
    $("edit-of").textContent = label(winner);
  }

  // Typed in: changed from the winner's text and not cleared (a cleared editor starts again).
  const editTouched = () => {
    const text = $("edit-text").value;
    return editOf !== null && text !== editStart && text.trim() !== "";
  };

  // The winner changed: an editor not yet typed in follows it.
  function followWinner() {
    const winner = winnerId();
    if (!$("edit-box").hidden && winner !== null && winner !== editOf && !editTouched()) startEdit(winner);
  }

  // --- keys ------------------------------------------------------------------------------------
  // Handles the form's keys; true when `e` was one of them.
  function onKey(e) {
    if (asks("ratings") && e.shiftKey && /^Digit[1-7]$/.test(e.code)) {
      e.preventDefault();
      rate(Number(e.code.slice(5)));
      return true;
    }
    if (asks("ratings") && (e.key === "r" || e.key === "R")) { e.preventDefault(); moveCursor(e.shiftKey ? -1 : 1); return true; }
    if (asks("critique") && e.key === "c") { e.preventDefault(); openCritique(); return true; }
    if (asks("edit") && e.key === "e") { e.preventDefault(); openEdit(); return true; }
    if (asks("strength") && isPair() && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      e.preventDefault();
      stepStrength(e.key === "ArrowUp" ? 1 : -1);
      return true;
    }
    return false;
  }

  // --- what is sent --------------------------------------------------------------------------------
  // The feedback fields for an answer `body` ({choice} or {ranking}), or {error} naming
  // what the form requires and is missing.
  function collect(body) {
    const answer = body.ranking ? "ranking" : body.choice;
    const out = {};
    const missing = [];
    const critique = $("critique").value;
    if (asks("critique") && critique.trim()) out.critique = critique;
    if (answer === "skip") return { fields: out };
    if (asks("critique") && !out.critique && form.critique === "required") {
      missing.push("a critique (c)");
      $("critique-box").hidden = false;
    }
    if (asks("strength") && (answer === "left" || answer === "right")) {
      if (strength) out.strength = strength;
      else if (form.strength === "required") { missing.push("how much better (↑/↓)"); $("strength-row").classList.add("invalid"); }
    }
    if (asks("ratings")) {
      const unrated = rows.filter((r) => !rated(r));
      if (!unrated.length) {
        out.ratings = {};
        rows.forEach((r) => { out.ratings[r.itemId] = { ...(out.ratings[r.itemId] || {}), [r.criterion]: ratings[r.itemId][r.criterion] }; });
      } else if (form.ratings === "required" || unrated.length < rows.length) {
        // every candidate on every criterion, or (when optional) none at all
        unrated.forEach((r) => r.el.classList.add("invalid"));
        cursor = rows.indexOf(unrated[0]);
        renderRatings();
        missing.push(`ratings of ${unrated.map((r) => `${label(r.itemId)} on ${r.criterion}`).join(", ")} (Shift+1..7)`);
      }
    }
    const winner = answer === "ranking" ? body.ranking[0] : answer === "left" ? items[0].id : answer === "right" ? items[1].id : null;
    if (asks("edit") && winner === null && editTouched()) {
      return { error: `Your edit of ${label(editOf)} needs a winner: pick ${label(editOf)}, or clear the editor.` };
    }
    if (asks("edit") && winner !== null) {
      if (editTouched() && editOf !== winner) {
        return { error: `Your edit started from ${label(editOf)}'s text, but the winner is ${label(winner)}: ` +
          `pick ${label(editOf)}, or clear the editor and press e to start from ${label(winner)}'s.` };
      }
      if (editTouched()) out.edit = $("edit-text").value;
      else if (form.edit === "required") missing.push("an improved text of the winner (e)");
    }
    if (missing.length) return { error: `Before sending, add ${missing.join("; ")}.` };
    return { fields: out };
  }

  // The server refused a field (its 400 names it, e.g. "ratings.12.overall"): point at it.
  function showInvalid(field) {
    if (!field) return;
    const [part, itemId, criterion] = String(field).split(".");
    if (part === "strength") $("strength-row").classList.add("invalid");
    else if (part === "critique") $("critique-box").hidden = false;
    else if (part === "edit") $("edit-box").hidden = false;
    else if (part === "ratings") {
      rows.forEach((r, i) => {
        if ((!itemId || r.itemId === Number(itemId)) && (!criterion || r.criterion === criterion)) {
          r.el.classList.add("invalid");
          if (itemId) cursor = i;
        }
      });
      renderRatings();
    }
  }

  return {
    init, setUp, pick, picked: () => picked, holds, offersBothBad, onKey, collect, showInvalid,
    rankingChanged: followWinner,
  };
})();
