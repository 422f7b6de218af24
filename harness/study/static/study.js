/* The rater's side of a study kit: one item at a time, answers kept in the page (and in
 * localStorage, so a reload resumes), a CSV download at the end. No network requests: the
 * item lists come from items.js, the images from img/ beside this file. */
"use strict";

(function () {
  var COLUMNS = ["rater_id", "item_id", "answer", "design", "rater_slot", "trial",
                 "response_ms", "left", "timestamp"];

  var TEXT = {
    plausibility: {
      title: "Do these colours look real?",
      intro: "<p>You will see a series of photographs, one at a time. Some are ordinary " +
        "colour photographs; others were coloured by a computer from a black-and-white " +
        "photograph.</p><p>For each one, decide whether its colours are <b>plausible</b>: " +
        "could this be a real colour photograph? Go with your first impression; there is no " +
        "time limit, but there is no need to study each image for long.</p>",
      question: "Could this be a real colour photograph?",
      buttons: [
        {answer: "plausible", label: "Plausible", key: "P", css: "yes"},
        {answer: "implausible", label: "Not plausible", key: "N", css: "no"}
      ],
      keys: {p: "plausible", n: "implausible"},
      hint: "Keys: <kbd>P</kbd> plausible, <kbd>N</kbd> not plausible."
    },
    "2afc": {
      title: "Which photo is the real one?",
      intro: "<p>You will see pairs of photographs of the same scene. In each pair one is an " +
        "ordinary colour photograph and the other was coloured by a computer from a " +
        "black-and-white version.</p><p>Pick the one you think is the <b>real</b> colour " +
        "photograph. If you cannot tell, make your best guess.</p>",
      question: "Which one is the real colour photograph?",
      buttons: [
        {answer: "left", label: "Left is real", key: "1 / \u2190", css: ""},
        {answer: "right", label: "Right is real", key: "2 / \u2192", css: ""}
      ],
      keys: {"1": "left", arrowleft: "left", "2": "right", arrowright: "right"},
      hint: "Keys: <kbd>1</kbd> or <kbd>\u2190</kbd> left, <kbd>2</kbd> or <kbd>\u2192</kbd> " +
        "right. You can also click the image."
    }
  };

  var $ = function (id) { return document.getElementById(id); };
  var study = window.STUDY;
  var state = {rater: "", slot: 0, trials: [], answers: [], shownAt: 0, ready: false};

  function show(section) {
    ["start", "trial", "done"].forEach(function (name) { $(name).hidden = name !== section; });
  }

  function fail(message) {
    $("start-error").textContent = message;
    $("start-error").hidden = false;
  }

  function storageKey() {
    return "study:" + study.kit + ":" + state.slot + ":" + state.rater;
  }

  function save() {
    try {
      window.localStorage.setItem(storageKey(), JSON.stringify(state.answers));
    } catch (e) { /* storage blocked (private mode, some file pages): keep going in memory */ }
  }

  function restore() {
    try {
      var saved = JSON.parse(window.localStorage.getItem(storageKey()) || "[]");
      return Array.isArray(saved) ? saved : [];
    } catch (e) {
      return [];
    }
  }

  function slotFromHash() {
    var match = /^#(?:rater=)?(\d+)$/.exec(window.location.hash);
    return match ? parseInt(match[1], 10) : 0;
  }

  function images(trial) {
    if (study.design === "2afc") {
      var right = trial.left === "a" ? "b" : "a";
      return ["img/" + trial.id + "-" + trial.left + ".png", "img/" + trial.id + "-" + right + ".png"];
    }
    return ["img/" + trial.id + ".png"];
  }

  function preload(index) {
    if (index < state.trials.length) {
      images(state.trials[index]).forEach(function (src) { new Image().src = src; });
    }
  }

  function setReady(ready) {
    state.ready = ready;
    Array.prototype.forEach.call($("answers").querySelectorAll("button"), function (b) {
      b.disabled = !ready;
    });
  }

  function render() {
    var index = state.answers.length;
    if (index >= state.trials.length) {
      finish();
      return;
    }
    var total = state.trials.length;
    $("progress-text").textContent = "Image " + (index + 1) + " of " + total;
    $("progress-bar").max = total;
    $("progress-bar").value = index;
    setReady(false);
    var stage = $("stage");
    stage.textContent = "";
    stage.className = study.design === "2afc" ? "pair" : "single";
    var sources = images(state.trials[index]);
    var pending = sources.length;
    sources.forEach(function (src, side) {
      var figure = document.createElement("figure");
      var img = document.createElement("img");
      img.alt = sources.length > 1 ? (side === 0 ? "Left photograph" : "Right photograph")
                                   : "Photograph to judge";
      img.draggable = false;
      img.addEventListener("load", function () {
        pending -= 1;
        if (pending === 0) {
          state.shownAt = performance.now();
          setReady(true);
        }
      });
      img.addEventListener("error", function () {
        stage.insertAdjacentHTML("beforeend", "<p class=\"error\">An image is missing from " +
          "this study kit; please tell the person running the study.</p>");
      });
      if (sources.length > 1) {
        img.addEventListener("click", function () { answer(side === 0 ? "left" : "right"); });
        var caption = document.createElement("figcaption");
        caption.textContent = side === 0 ? "Left (1)" : "Right (2)";
        figure.appendChild(img);
        figure.appendChild(caption);
      } else {
        figure.appendChild(img);
      }
      img.src = src;
      stage.appendChild(figure);
    });
    preload(index + 1);
  }

  function answer(choice) {
    if (!state.ready) {
      return;
    }
    setReady(false);
    var index = state.answers.length;
    var trial = state.trials[index];
    var value = choice;
    if (study.design === "2afc") {
      var other = trial.left === "a" ? "b" : "a";
      value = choice === "left" ? trial.left : other;
    }
    state.answers.push({
      rater_id: state.rater,
      item_id: trial.id,
      answer: value,
      design: study.design,
      rater_slot: state.slot,
      trial: index + 1,
      response_ms: Math.round(performance.now() - state.shownAt),
      left: trial.left || "",
      timestamp: new Date().toISOString()
    });
    save();
    render();
  }

  function csvField(value) {
    var text = String(value);
    return /[",\r\n]/.test(text) ? "\"" + text.replace(/"/g, "\"\"") + "\"" : text;
  }

  function toCsv(rows) {
    var lines = [COLUMNS.join(",")];
    rows.forEach(function (row) {
      lines.push(COLUMNS.map(function (c) { return csvField(row[c]); }).join(","));
    });
    return lines.join("\n") + "\n";
  }

  function finish() {
    var csv = toCsv(state.answers);
    var name = "votes-" + study.kit + "-rater" + state.slot + "-" +
      state.rater.replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 40) + ".csv";
    var link = $("download");
    link.href = URL.createObjectURL(new Blob([csv], {type: "text/csv"}));
    link.download = name;
    link.textContent = name;
    $("csv").value = csv;
    show("done");
    link.click();
  }

  function start(event) {
    event.preventDefault();
    var rater = $("rater-id").value.trim();
    var slot = parseInt($("rater-slot").value, 10);
    if (!rater) {
      fail("Please enter your participant id.");
      return;
    }
    state.rater = rater;
    state.slot = slot;
    state.trials = study.raters[slot - 1];
    state.answers = restore().slice(0, state.trials.length);
    show("trial");
    render();
  }

  function onKey(event) {
    if ($("trial").hidden || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    var choice = TEXT[study.design].keys[event.key.toLowerCase()];
    if (choice) {
      event.preventDefault();
      answer(choice);
    }
  }

  function init() {
    if (!study || !TEXT[study.design] || !study.raters || !study.raters.length) {
      fail("This study kit is incomplete (items.js is missing or damaged).");
      $("start-form").hidden = true;
      return;
    }
    var text = TEXT[study.design];
    document.title = text.title;
    $("title").textContent = text.title;
    $("intro").innerHTML = text.intro + "<p>There are " + study.raters[0].length +
      " " + (study.design === "2afc" ? "pairs" : "photographs") + ". At the end your " +
      "answers are saved as a small file to send back.</p>";
    $("question").textContent = text.question;
    $("keys").innerHTML = text.hint;
    var select = $("rater-slot");
    study.raters.forEach(function (_, i) {
      var option = document.createElement("option");
      option.value = String(i + 1);
      option.textContent = String(i + 1);
      select.appendChild(option);
    });
    var slot = slotFromHash();
    if (slot >= 1 && slot <= study.raters.length) {
      select.value = String(slot);
    }
    text.buttons.forEach(function (b) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "big " + b.css;
      button.dataset.answer = b.answer;
      button.innerHTML = b.label + " <kbd>" + b.key + "</kbd>";
      button.addEventListener("click", function () { answer(b.answer); });
      $("answers").appendChild(button);
    });
    $("start-form").addEventListener("submit", start);
    document.addEventListener("keydown", onKey);
    show("start");
  }

  init();
}());
