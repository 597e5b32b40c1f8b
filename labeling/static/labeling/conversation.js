// Conversations on the annotator's page: a prompt given as chat messages and a candidate's
// assistant turns, each turn shown under its role (system, user, assistant). A plain text
// prompt or response is shown as before. Prompts and model outputs are untrusted: they are
// only ever set as text.
window.Conversation = (function () {
  "use strict";
  const ROLES = ["system", "user", "assistant"];

  function turn(message) {
    const role = ROLES.includes(message.role) ? message.role : "other";
    const el = document.createElement("div");
    el.className = `turn turn-${role}`;
    el.dataset.role = role;
    const who = document.createElement("div");
    who.className = "turn-role";
    who.textContent = String(message.role);
    const content = document.createElement("div");
    content.className = "turn-content";
    content.textContent = String(message.content);
    el.append(who, content);
    return el;
  }

  function fill(el, value) {
    el.replaceChildren();
    const isConversation = Array.isArray(value);
    el.classList.toggle("conversation", isConversation);
    if (isConversation) value.forEach((m) => el.appendChild(turn(m)));
    else el.textContent = value || "";
  }

  // The prompt box: the string as text, or a conversation's turns.
  function renderPrompt(el, prompt) { fill(el, prompt); }

  // A text candidate's body: its text, or its assistant turns when it has `messages`.
  function response(item) {
    const body = document.createElement("div");
    body.className = "response";
    fill(body, Array.isArray(item.messages) ? item.messages : item.text);
    return body;
  }

  // The text an edit starts from and replaces: a conversation's final assistant turn.
  function finalText(item) {
    const m = item.messages;
    return Array.isArray(m) && m.length ? String(m[m.length - 1].content) : item.text || "";
  }

  return { renderPrompt, response, finalText };
})();
