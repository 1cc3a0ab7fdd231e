// Digit reader: draw or upload a digit, POST it to /predict, show what the model read.
// In number mode ("A number") the canvas is wider and the drawing goes to /read instead,
// which finds each digit of a whole number; the page boxes each one on the canvas.
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
  const READ_URL = "read?include=preprocessed";
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
  const modeSwitch = $("mode-switch");
  const inputTitle = $("input-title");
  const hint = $("hint");
  const boxes = $("boxes");
  const numberOutput = $("number");
  const numberVerdict = $("number-verdict");
  const numberSummary = $("number-summary");
  const numberDigits = $("number-digits");

  // One digit: the square canvas and /predict. A number: a canvas three times as wide, as tall
  // as the square one (so the pen is the same size next to each digit), and /read. The
  // one-digit words are the page's own, so index.html stays the one place they are written.
  const MODES = {
    digit: {
      width: canvas.width,
      height: canvas.height,
      url: PREDICT_URL,
      title: inputTitle.textContent,
      label: canvas.getAttribute("aria-label"),
      hint: hint.textContent,
    },
    number: {
      width: 840,
      height: 280,
      url: READ_URL,
      title: "Your number",
      label: "Drawing area: write a number, its digits side by side, with a mouse, finger or pen",
      hint:
        "Write the digits side by side, a little apart. You can also drop a photo of a " +
        "number on the canvas or paste one (Ctrl+V).",
    },
  };
  let mode = "digit";

  /** Each stroke is a list of [x, y] canvas points; Undo drops the last one. */
  let strokes = [];
  let activeStroke = null; // {pointerId, points} while the pen is down
  let photoUrl = null;
  let photoFile = null; // read again when the mode changes
  let shownNumber = null; // the /read answer on the page: its boxes follow the canvas's size
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
    photoFile = file;
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
    photoFile = null;
    clearBoxes(); // they were drawn over the photo
  }

  // The browser cannot show every image the service reads (TIFF, say): keep just the name.
  photoImage.addEventListener("error", () => {
    if (photoImage.getAttribute("src")) photoImage.hidden = true;
    layoutBoxes(); // none: there is no picture to draw them on
  });
  // An answer can come back before the preview has decoded: only then is its size known.
  photoImage.addEventListener("load", () => layoutBoxes());

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
    const askedMode = mode; // a change of mode cancels this request (and bumps requestSeq)
    let response;
    let body = null;
    try {
      response = await fetch(MODES[askedMode].url, {
        method: "POST",
        body: form,
        signal: controller.signal,
      });
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
    if (askedMode === "number") showNumber(body);
    else showReading(body);
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
  // digits), `not_a_digit` (then `digit` is null and only `best_guess` names one) or
  // `several_digits` (digits side by side: number mode reads them).
  function showReading(result) {
    errorBox.hidden = true;
    const guess = String(result.best_guess);
    if (result.verdict === "several_digits") {
      showHeadline("", "That looks like several digits");
      confidence.replaceChildren("Switch to ", bold("A number"), " to read them all.");
    } else if (result.verdict === "not_a_digit") {
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
    resetNumber("?", "Write a number to start.");
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
    resetNumber("?", "No reading.");
    delete app.dataset.verdict;
    app.dataset.state = "error";
  }

  // --- number mode: the number, each digit's card, and the boxes on the canvas -----------

  /** 1st, 2nd, 3rd, 4th... 11th, 12th, 13th... 21st. */
  const ordinal = (n) => {
    const teen = n % 100 > 10 && n % 100 < 14;
    return n + (teen || n % 10 > 3 ? "th" : ["th", "st", "nd", "rd"][n % 10]);
  };
  const span = (className, textContent) =>
    Object.assign(document.createElement("span"), { className, textContent });
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  function resetNumber(text, summary) {
    numberOutput.textContent = text;
    numberOutput.hidden = false;
    delete numberOutput.dataset.number;
    delete numberOutput.dataset.guess;
    numberVerdict.hidden = true;
    numberVerdict.textContent = "";
    numberSummary.textContent = summary;
    numberDigits.replaceChildren();
    clearBoxes();
  }

  function clearBoxes() {
    shownNumber = null;
    boxes.replaceChildren();
  }

  /** What a digit of the number reads as: itself, or "?" (unsure, or not a digit at all). */
  const readAs = (d) => (d.verdict === "digit" ? String(d.digit) : "?");

  // /read's verdict: `number` (every digit read), `uncertain` (some digit could be one of
  // two: it shows as "?"), `no_number` (no digit at all). `marks` are the pieces of ink that
  // are not digits (a dot, a line, a squiggle); they are boxed in grey and otherwise ignored.
  function showNumber(result) {
    errorBox.hidden = true;
    const digits = Array.isArray(result.digits) ? result.digits : [];
    const marks = Array.isArray(result.marks) ? result.marks : [];
    const guess = digits.map((d) => String(d.best_guess)).join("");
    numberDigits.replaceChildren(...digits.map(digitCard));
    numberOutput.dataset.guess = guess;
    if (typeof result.number === "string") numberOutput.dataset.number = result.number;
    else delete numberOutput.dataset.number;
    const marksNote = marks.length ? ` ${plural(marks.length, "mark")} left out (grey).` : "";

    if (result.verdict === "number" && result.number) {
      numberOutput.textContent = result.number;
      numberOutput.hidden = false;
      numberVerdict.hidden = true;
      const least = Math.min(...digits.map((d) => d.confidence));
      let each = ", ";
      if (digits.length > 1) each = percent(least) === "100%" ? ", each " : ", each at least ";
      numberSummary.replaceChildren(
        plural(digits.length, "digit"),
        each,
        bold(percent(least)),
        " sure.",
        marksNote,
      );
    } else if (result.verdict === "uncertain" || (digits.length && result.verdict === "number")) {
      // The digits it is sure of, and a "?" in place of each one it is not.
      numberOutput.replaceChildren(
        ...digits.map((d) => (d.verdict === "digit" ? String(d.digit) : span("unsure", "?"))),
      );
      numberOutput.hidden = false;
      const unsure = digits.map((d, i) => [d, i]).filter(([d]) => d.verdict !== "digit");
      numberVerdict.textContent =
        unsure.length === 1
          ? `Not sure of the ${ordinal(unsure[0][1] + 1)} digit`
          : `Not sure of ${unsure.length} digits`;
      numberVerdict.hidden = false;
      const parts = unsure.map(([d, i]) => {
        const [first, second] = d.alternatives || [];
        return first && second && d.verdict === "uncertain"
          ? `${ordinal(i + 1)}: ${first.digit} or ${second.digit}?`
          : `${ordinal(i + 1)}: not a digit?`;
      });
      numberSummary.replaceChildren(parts.join(" "), " Best guess: ", bold(guess), ".", marksNote);
    } else {
      numberOutput.textContent = "";
      numberOutput.hidden = true;
      numberVerdict.textContent = "No number found";
      numberVerdict.hidden = false;
      const are = marks.length === 1 ? "is" : "are";
      numberSummary.textContent = marks.length
        ? `Only ${plural(marks.length, "mark")} that ${are} not a digit (grey).`
        : "Write the digits side by side, a little apart.";
    }
    shownNumber = { digits, marks };
    layoutBoxes();
    app.dataset.verdict = result.verdict;
    app.dataset.state = "done";
  }

  /** A card under the number: the model's view of one digit and what it read there. */
  function digitCard(d, index) {
    const item = document.createElement("li");
    item.className = "number-digit";
    item.dataset.verdict = d.verdict;
    const seen = d.preprocessed_png_base64
      ? Object.assign(document.createElement("img"), {
          src: `data:image/png;base64,${d.preprocessed_png_base64}`,
          width: 56,
          height: 56,
          alt: "",
        })
      : span("seen-empty", "");
    const read = span("card-digit", readAs(d));
    const detail = span("card-detail", "");
    const [first, second] = d.alternatives || [];
    let words;
    if (d.verdict === "digit") {
      detail.textContent = percent(d.confidence);
      words = `a ${d.digit}, ${percent(d.confidence)} sure`;
    } else if (d.verdict === "uncertain" && first && second) {
      detail.textContent = `${first.digit} or ${second.digit}?`;
      words =
        `not sure: ${percent(first.probability)} a ${first.digit}, ` +
        `${percent(second.probability)} a ${second.digit}`;
    } else {
      detail.textContent = "not a digit";
      words = `not a digit (at best a ${d.best_guess}, ${percent(d.confidence)})`;
    }
    item.setAttribute("aria-label", `${ordinal(index + 1)} digit: ${words}`);
    item.append(seen, read, detail);
    return item;
  }

  /** Where the uploaded image's pixels are on the page, in the drop zone's CSS pixels. */
  function imageFrame() {
    const zone = dropZone.getBoundingClientRect();
    if (photo.hidden) {
      const shown = canvas.getBoundingClientRect();
      return {
        left: shown.left - zone.left,
        top: shown.top - zone.top,
        scaleX: shown.width / canvas.width,
        scaleY: shown.height / canvas.height,
      };
    }
    const { naturalWidth: width, naturalHeight: height } = photoImage;
    if (photoImage.hidden || !width || !height) return null; // no preview (yet)
    const shown = photoImage.getBoundingClientRect(); // object-fit: contain, centred
    const scale = Math.min(shown.width / width, shown.height / height);
    return {
      left: shown.left - zone.left + (shown.width - width * scale) / 2,
      top: shown.top - zone.top + (shown.height - height * scale) / 2,
      scaleX: scale,
      scaleY: scale,
    };
  }

  function place(element, box, frame) {
    const top = frame.top + box.y * frame.scaleY;
    Object.assign(element.style, {
      left: `${frame.left + box.x * frame.scaleX}px`,
      top: `${top}px`,
      width: `${Math.max(box.width * frame.scaleX, 4)}px`,
      height: `${Math.max(box.height * frame.scaleY, 4)}px`,
    });
    element.classList.toggle("label-inside", top < 22); // no room above for the label
  }

  /** (Re)draw the boxes of the answer on the page: after an answer and whenever the canvas
   * (or the photo under them) changes size. */
  function layoutBoxes() {
    boxes.replaceChildren();
    const frame = shownNumber && imageFrame();
    if (!frame) return;
    shownNumber.marks.forEach((mark) => {
      const element = Object.assign(document.createElement("div"), { className: "mark-box" });
      element.dataset.kind = mark.kind;
      place(element, mark.box, frame);
      boxes.append(element);
    });
    shownNumber.digits.forEach((d, index) => {
      const element = Object.assign(document.createElement("div"), { className: "digit-box" });
      element.dataset.index = String(index);
      element.dataset.verdict = d.verdict;
      element.dataset.digit = d.verdict === "digit" ? String(d.digit) : "";
      element.dataset.guess = String(d.best_guess);
      let label = "?"; // not a digit
      if (d.verdict === "digit") label = `${d.digit} · ${percent(d.confidence)}`;
      else if (d.verdict === "uncertain") label = `${d.best_guess}? ${percent(d.confidence)}`;
      element.append(span("box-label", label));
      place(element, d.box, frame);
      boxes.append(element);
    });
  }

  if ("ResizeObserver" in window) new ResizeObserver(() => layoutBoxes()).observe(dropZone);
  else window.addEventListener("resize", () => layoutBoxes());

  // --- the mode switch -------------------------------------------------------------------

  /** Switch between one digit and a number: a fresh canvas of the mode's size; an uploaded
   * photo stays and is read again the new way. */
  function setMode(next) {
    if (!MODES[next] || next === mode) return;
    const file = photo.hidden ? null : photoFile;
    cancelPrediction();
    mode = next;
    const settings = MODES[mode];
    app.dataset.mode = mode;
    $(`mode-${mode}`).checked = true;
    inputTitle.textContent = settings.title;
    canvas.setAttribute("aria-label", settings.label);
    hint.textContent = settings.hint;
    activeStroke = null;
    strokes = [];
    canvas.width = settings.width; // resizing a canvas also blanks it
    canvas.height = settings.height;
    repaint();
    if (file) {
      usePhoto(file);
    } else {
      hidePhoto();
      changed();
    }
    const url = location.pathname + location.search + (mode === "number" ? "#number" : "");
    history.replaceState(null, "", url); // a link or a reload keeps the mode
  }

  modeSwitch.addEventListener("change", (event) => setMode(event.target.value));

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
  if (location.hash === "#number") setMode("number");
  loadModelInfo();
})();
