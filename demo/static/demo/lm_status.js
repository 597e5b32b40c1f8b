// Follows the background build of the demo language model in the page's notice bar.
(function () {
  "use strict";
  const notice = document.getElementById("demo-lm-build");
  if (!notice) return;
  const text = notice.querySelector(".notice-text");
  let delay = 2000;

  function show(status) {
    if (status.state === "ready") {
      text.innerHTML = "";
      text.append("The demo language model is ready: ");
      const link = document.createElement("a");
      link.href = status.url;
      link.textContent = "judge its answers (demo-lm)";
      text.append(link);
      return true;
    }
    if (status.state === "failed") {
      text.textContent = "Building the demo language model failed: " + status.error;
      return true;
    }
    const percent = Math.round(100 * status.fraction);
    text.textContent = status.state === "queued"
      ? "The demo language model is queued for building on the worker."
      : `The demo language model is being built on the worker: ${percent}%. ` +
        "Its project, demo-lm, appears here when it is ready.";
    return false;
  }

  async function poll() {
    try {
      const response = await fetch(notice.dataset.url, {headers: {Accept: "application/json"}});
      if (response.ok && show(await response.json())) return;
      delay = 2000;
    } catch (error) {
      delay = Math.min(delay * 2, 30000);  // the server is restarting, say
    }
    setTimeout(poll, delay);
  }
  setTimeout(poll, delay);
})();
