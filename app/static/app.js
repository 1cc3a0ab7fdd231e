// Digit reader: draw or upload a digit, POST it to /predict, show what the model read.
// Plain script, no build step and no dependencies; every request goes to this same service.
"use strict";

(() => {
  // The canvas is 280 px, ten times MNIST's 28. A person's digit fills most of it, and the
  // service scales the digit's box down to MNIST's 20 px, so a 20 px pen ends up about 2 px
  // wide, as thick as MNIST's own strokes. Much thinner and the digit breaks up into faint
  // lines at 28x28; much thicker and loops (6, 8, 9, 0) fill in.
  const STROKE_WIDTH = 20;
  const INK = "#000";
  const PAPER = "#fff";
  // Ask again 250 ms after the pen last moved, but at least every 700 ms while it keeps
  // moving, so the reading follows the drawing without a request per pointer event.
  const DEBOUNCE_MS = 250;
  const MAX_WAIT_MS = 700;
  const PREDICT_URL = "predict?include=preprocessed"; // relative: works behind a path prefix
  const MODEL_URL = "model";

  const HEADLINES = {
    0: "Could not reach the service.",
    400: "That file could not be read as an image.",
    413: "That file is too large.",
    415: "That kind of file is not supported.",
    422: "The model found nothing to read.",
    500: "The service failed to read this image.",
    503: "The service is busy or still starting; try again in a moment.",
  };

  const $ = (id) => document.getElementById(id);
  const app = $("app");
  const canvas = $("canvas");
  const ctx = canvas.getContext("2d");
  const dropZone = $("drop-zone");
  const photo = $("photo");
  const photoImage = $("photo-image");
  const photoName = $("photo-name");
  const undoButton = $("undo");
  const clearButton = $("clear");
  const fileInput = $("file");
  const errorBox = $("error");
  const digitOutput = $("digit");
  const verdictText = $("verdict");
  const confidence = $("confidence");
  const bars = $("probabilities");
  const preprocessed = $("preprocessed");
  const preprocessedEmpty = $("preprocessed-empty");
  const modelInfo = $("model-info");

  /** Each stroke is a list of [x, y] canvas points; Undo drops the last one. */
  let strokes = [];
  let activeStroke = null; // {pointerId, points} while the pen is down
  let photoUrl = null;
  let timer = 0;
  let firstChange = 0;
  let inFlight = null; // AbortController of the request whose answer we still want
  let requestSeq = 0;

  // --- drawing ---------------------------------------------------------------------------

  function setPen() {
    ctx.lineWidth = STROKE_WIDTH;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = INK;
    ctx.fillStyle = INK;
  }

  function dot([x, y]) {
    ctx.beginPath();
    ctx.arc(x, y, STROKE_WIDTH / 2, 0, 2 * Math.PI);
    ctx.fill();
  }

  function segment([x0, y0], [x1, y1]) {
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }

  /** Repaint from the stroke list: a white sheet (the PNG is opaque) with every stroke. */
  function repaint() {
    ctx.fillStyle = PAPER;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    setPen();
    for (const points of strokes) {
      dot(points[0]);
      for (let i = 1; i < points.length; i += 1) segment(points[i - 1], points[i]);
    }
  }

  function canvasPoint(event) {
    const box = canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * canvas.width) / box.width,
      ((event.clientY - box.top) * canvas.height) / box.height,
    ];
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (activeStroke || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    if (!photo.hidden) {
      hidePhoto(); // drawing over an uploaded photo starts a new drawing
      repaint();
    }
    const point = canvasPoint(event);
    activeStroke = { pointerId: event.pointerId, points: [point] };
    strokes.push(activeStroke.points);
    setPen();
    dot(point);
    changed();
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!activeStroke || event.pointerId !== activeStroke.pointerId) return;
    // A fast pen reports several positions per frame; use them all for a smooth line.
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    const points = activeStroke.points;
    for (const each of events.length ? events : [event]) {
      const point = canvasPoint(each);
      segment(points[points.length - 1], point);
      points.push(point);
    }
    changed();
  });

  function endStroke(event) {
    if (!activeStroke || event.pointerId !== activeStroke.pointerId) return;
    activeStroke = null;
    changed();
  }

  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  function undo() {
    if (activeStroke || !strokes.length) return;
    strokes.pop();
    repaint();
    changed();
  }

  function clearAll() {
    activeStroke = null;
    strokes = [];
    hidePhoto();
    repaint();
    changed();
  }

  undoButton.addEventListener("click", undo);
  clearButton.addEventListener("click", clearAll);

  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
    } else if (event.key === "Escape") {
      clearAll();
    }
  });

  /** The drawing changed: update the buttons and ask the model again soon. */
  function changed() {
    undoButton.disabled = strokes.length === 0;
    clearButton.disabled = strokes.length === 0 && photo.hidden;
    if (!strokes.length) {
      cancelPrediction();
      showIdle();
      return;
    }
    app.dataset.state = "pending";
    const now = performance.now();
    if (!timer) firstChange = now;
    clearTimeout(timer);
    const wait = Math.max(0, Math.min(DEBOUNCE_MS, firstChange + MAX_WAIT_MS - now));
    timer = setTimeout(predictDrawing, wait);
  }

  function predictDrawing() {
    timer = 0;
    if (!strokes.length) return;
    canvas.toBlob((blob) => {
      if (blob && strokes.length && photo.hidden) predict(blob, "drawing.png");
    }, "image/png");
  }

  // --- photos: upload, drop, paste -------------------------------------------------------

  function usePhoto(file) {
    if (!file) return;
    cancelPrediction();
    strokes = [];
    activeStroke = null;
    repaint();
    hidePhoto();
    photoName.textContent = file.name || "Pasted image";
    photoImage.hidden = !file.type.startsWith("image/");
    if (!photoImage.hidden) {
      photoUrl = URL.createObjectURL(file);
      photoImage.src = photoUrl;
    }
    photo.hidden = false;
    undoButton.disabled = true;
    clearButton.disabled = false;
    app.dataset.state = "pending";
    predict(file, file.name || "pasted-image");
  }

  function hidePhoto() {
    photo.hidden = true;
    photoImage.removeAttribute("src");
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = null;
  }

  // The browser cannot show every image the service reads (TIFF, say): keep just the name.
  photoImage.addEventListener("error", () => {
    if (photoImage.getAttribute("src")) photoImage.hidden = true;
  });

  fileInput.addEventListener("change", () => {
    usePhoto(fileInput.files[0]);
    fileInput.value = ""; // choosing the same file again is a change too
  });

  const carriesFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");

  // The whole window accepts a dropped file, so a near miss never navigates away to it.
  window.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    dropZone.classList.add("dragging");
  });
  window.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) dropZone.classList.remove("dragging"); // left the window
  });
  window.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dropZone.classList.remove("dragging");
    usePhoto(event.dataTransfer.files[0]);
  });

  document.addEventListener("paste", (event) => {
    const files = Array.from(event.clipboardData?.files || []);
    if (!files.length) {
      showError(0, "Copy an image (a screenshot, a photo) before pasting.", "Nothing to read.");
      return;
    }
    event.preventDefault();
    usePhoto(files.find((file) => file.type.startsWith("image/")) || files[0]);
  });

  // --- asking the service ----------------------------------------------------------------

  function cancelPrediction() {
    clearTimeout(timer);
    timer = 0;
    if (inFlight) inFlight.abort();
    inFlight = null;
    requestSeq += 1;
  }

  async function predict(blob, filename) {
    if (inFlight) inFlight.abort(); // only the newest drawing's answer matters
    const controller = new AbortController();
    inFlight = controller;
    const seq = ++requestSeq;
    const form = new FormData();
    form.append("file", blob, filename);
    let response;
    let body = null;
    try {
      response = await fetch(PREDICT_URL, { method: "POST", body: form, signal: controller.signal });
      body = await response.json().catch(() => null);
    } catch (error) {
      if (error.name === "AbortError" || seq !== requestSeq) return;
      showError(0, "Check that the service is running, then try again.");
      return;
    } finally {
      if (inFlight === controller) inFlight = null;
    }
    if (seq !== requestSeq) return; // a newer drawing or a Clear superseded this answer
    if (!response.ok) {
      showError(response.status, body && typeof body.detail === "string" ? body.detail : "");
      return;
    }
    showReading(body);
  }

  // --- showing the answer ----------------------------------------------------------------

  const rows = [];
  for (let digit = 0; digit < 10; digit += 1) {
    const row = document.createElement("li");
    row.innerHTML =
      '<span class="label"></span><span class="track"><span class="fill"></span></span>' +
      '<span class="value"></span>';
    row.querySelector(".label").textContent = String(digit);
    bars.append(row);
    rows.push({
      row,
      fill: row.querySelector(".fill"),
      value: row.querySelector(".value"),
    });
  }

  function percent(p) {
    return p >= 0.9995 ? "100%" : `${(p * 100).toFixed(1)}%`;
  }

  function setBars(probabilities, top) {
    rows.forEach(({ row, fill, value }, digit) => {
      const p = probabilities ? probabilities[digit] : 0;
      fill.style.width = `${(p * 100).toFixed(2)}%`;
      value.textContent = probabilities ? percent(p) : "";
      row.classList.toggle("top", digit === top);
      row.setAttribute("aria-label", probabilities ? `${digit}: ${percent(p)}` : `${digit}`);
    });
  }

  function setPreprocessed(base64) {
    preprocessed.hidden = !base64;
    preprocessedEmpty.hidden = Boolean(base64);
    if (base64) {
      preprocessed.src = `data:image/png;base64,${base64}`;
      preprocessed.alt = "The 28 by 28 pixel image the model classified";
    } else {
      preprocessed.removeAttribute("src");
      preprocessed.alt = "";
    }
  }

  const bold = (text) => Object.assign(document.createElement("strong"), { textContent: text });

  /** The big digit, or (when the model is unsure or sees no digit) a sentence in its place. */
  function showHeadline(digit, sentence) {
    digitOutput.textContent = digit;
    digitOutput.hidden = sentence !== null;
    verdictText.textContent = sentence || "";
    verdictText.hidden = sentence === null;
  }

  // The service judges every answer: `digit`, `uncertain` (with the three most probable
  // digits) or `not_a_digit` (then `digit` is null and only `best_guess` names one).
  function showReading(result) {
    errorBox.hidden = true;
    const guess = String(result.best_guess);
    if (result.verdict === "not_a_digit") {
      showHeadline("", "That doesn't look like a digit");
      confidence.replaceChildren(
        "If it were one, it would be a ",
        guess,
        ", but only ",
        bold(percent(result.confidence)),
        " likely.",
      );
    } else if (result.verdict === "uncertain") {
      const [first, second] = result.alternatives;
      showHeadline("", `Not sure: ${first.digit} or ${second.digit}?`);
      confidence.replaceChildren(
        bold(percent(first.probability)),
        ` a ${first.digit}, `,
        bold(percent(second.probability)),
        ` a ${second.digit}`,
      );
    } else {
      showHeadline(String(result.digit), null);
      confidence.replaceChildren(bold(percent(result.confidence)), " sure it is a ", guess);
    }
    setBars(result.probabilities, result.best_guess);
    setPreprocessed(result.preprocessed_png_base64);
    app.dataset.verdict = result.verdict;
    app.dataset.state = "done";
  }

  function showIdle() {
    errorBox.hidden = true;
    showHeadline("?", null);
    confidence.textContent = "Draw a digit to start.";
    setBars(null, -1);
    setPreprocessed(null);
    delete app.dataset.verdict;
    app.dataset.state = "idle";
  }

  function showError(status, detail, headline) {
    const title = headline || HEADLINES[status] || `The service answered ${status}.`;
    const strong = document.createElement("strong");
    strong.textContent = title;
    errorBox.replaceChildren(strong);
    if (detail) errorBox.append(detail);
    errorBox.dataset.status = String(status);
    errorBox.hidden = false;
    showHeadline("?", null);
    confidence.textContent = "No reading.";
    setBars(null, -1);
    setPreprocessed(null);
    delete app.dataset.verdict;
    app.dataset.state = "error";
  }

  // --- the footer: which model is reading ------------------------------------------------

  async function loadModelInfo() {
    let retryMs = 0;
    try {
      const response = await fetch(MODEL_URL, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const model = await response.json();
        const parts = [`Model version ${model.version}`];
        if (model.arch) parts.push(`${model.arch} network`);
        if (typeof model.test_accuracy === "number") {
          parts.push(`${(model.test_accuracy * 100).toFixed(2)}% accurate on the MNIST test set`);
        }
        modelInfo.textContent = parts.join(" · ");
        modelInfo.dataset.version = String(model.version);
        return;
      }
      modelInfo.textContent =
        response.status === 503 ? "The model is loading…" : `Model details unavailable (${response.status}).`;
      retryMs = response.status === 503 ? 2000 : 0;
    } catch {
      modelInfo.textContent = "Cannot reach the service.";
      retryMs = 5000;
    }
    if (retryMs) setTimeout(loadModelInfo, retryMs);
  }

  repaint();
  showIdle();
  loadModelInfo();
})();
