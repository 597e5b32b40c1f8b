// Clip review on the annotator's page: the clips of one comparison start together and stay
// within 0.1 s of the first; pause / play, scrub, half speed and the loop marker act on all
// of them at once. annotate.js shows the comparisons and wires the keys and buttons to this.
window.ClipReview = (function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let clips = null; // the clips on screen: {videos, paused, loops, lastT, frame}
  let halfSpeed = false;

  function setUp(box) {
    if (clips) cancelAnimationFrame(clips.frame);
    clips = null;
    const videos = Array.from(box.querySelectorAll("video"));
    $("clip-controls").hidden = !videos.length;
    if (!videos.length) return;
    const c = { videos, paused: false, loops: 0, lastT: 0, frame: 0 };
    clips = c;
    videos.forEach((v) => { v.defaultPlaybackRate = v.playbackRate = halfSpeed ? 0.5 : 1; });
    let ready = 0;
    videos.forEach((v) =>
      v.addEventListener("canplay", function once() {
        v.removeEventListener("canplay", once);
        ready += 1;
        if (ready === videos.length) {
          videos.forEach((w) => { w.currentTime = 0; });
          if (!c.paused) videos.forEach((w) => w.play().catch(() => {}));
        }
      })
    );
    videos[0].addEventListener("loadedmetadata", () => { $("clip-scrub").max = String(videos[0].duration || 1); });
    videos[0].addEventListener("timeupdate", () => {
      const t = videos[0].currentTime;
      videos.slice(1).forEach((w) => { if (Math.abs(w.currentTime - t) > 0.1) w.currentTime = t; });
    });
    $("clip-scrub").value = "0";
    $("clip-loops").textContent = "↻ loop 0";
    renderControls();
    const tick = () => {
      if (clips !== c) return;
      const v = videos[0];
      const t = v.currentTime;
      if (!v.paused && t + 0.25 < c.lastT) loopedAround(c); // jumped back while playing: it wrapped
      c.lastT = t;
      if (!v.paused) $("clip-scrub").value = String(t);
      $("clip-time").textContent = `${t.toFixed(1)} s${v.duration ? ` / ${v.duration.toFixed(1)} s` : ""}`;
      c.frame = requestAnimationFrame(tick);
    };
    c.frame = requestAnimationFrame(tick);
  }

  function loopedAround(c) {
    c.loops += 1;
    $("clip-loops").textContent = `↻ loop ${c.loops}`;
    const box = $("candidates");
    box.classList.remove("looped");
    void box.offsetWidth; // restart the flash animation
    box.classList.add("looped");
  }

  function setPaused(paused) {
    if (!clips) return;
    clips.paused = paused;
    const [first, ...others] = clips.videos;
    if (paused) {
      clips.videos.forEach((v) => v.pause());
    } else {
      others.forEach((v) => { v.currentTime = first.currentTime; });
      clips.lastT = first.currentTime;
      clips.videos.forEach((v) => v.play().catch(() => {}));
    }
    renderControls();
  }

  function scrub(t) {
    if (!clips) return;
    if (!clips.paused) setPaused(true); // a scrubbed-to frame stays on screen
    clips.videos.forEach((v) => { v.currentTime = t; });
    clips.lastT = t;
  }

  function toggleHalfSpeed() {
    halfSpeed = !halfSpeed;
    if (clips) clips.videos.forEach((v) => { v.defaultPlaybackRate = v.playbackRate = halfSpeed ? 0.5 : 1; });
    renderControls();
  }

  function renderControls() {
    const paused = !!(clips && clips.paused);
    const play = $("clip-play");
    play.querySelector(".label").textContent = paused ? "Play" : "Pause";
    play.setAttribute("aria-label", paused ? "Play the clips" : "Pause the clips");
    $("clip-half").setAttribute("aria-pressed", String(halfSpeed));
    $("clip-half").classList.toggle("active", halfSpeed);
  }

  function stop() {
    if (clips) cancelAnimationFrame(clips.frame);
    clips = null;
  }

  const active = () => clips !== null;
  const togglePaused = () => { if (clips) setPaused(!clips.paused); };

  return { setUp, stop, active, togglePaused, scrub, toggleHalfSpeed };
})();
