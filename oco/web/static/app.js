// OCO Deploy console: small progressive enhancements. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // How many are checked: <span data-count-for="NAME"> in the form of the checkboxes named NAME.
  const counters = () => document.querySelectorAll("[data-count-for]").forEach((counter) => {
    const form = counter.closest("form");
    const name = counter.dataset.countFor;
    const checked = form.querySelectorAll(`input[type=checkbox][name="${name}"]:checked`).length;
    const all = form.querySelector("input[name=all_matching]:checked");
    counter.textContent = all ? "all that match are selected" : checked ? `${checked} selected` : "";
  });
  document.addEventListener("change", (event) => {
    if (event.target.matches("input[type=checkbox]")) counters();
  });
  counters();

  // "Select all" checkboxes: <input class="select-all" data-target="NAME">. On a list that continues on
  // other pages, checking it offers "select all N that match" (`.select-matching`).
  document.querySelectorAll("input.select-all").forEach((box) => {
    box.addEventListener("change", () => {
      const form = box.closest("form");
      form.querySelectorAll(`input[type=checkbox][name="${box.dataset.target}"]`)
        .forEach((item) => { if (!item.closest("tr, label")?.hidden) item.checked = box.checked; });
      const offer = form.querySelector(".select-matching");
      if (offer) {
        offer.hidden = !box.checked;
        if (!box.checked) offer.querySelector("input[name=all_matching]").checked = false;
      }
      counters();
    });
  });

  // Selects that apply at once: <select data-autosubmit>.
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });

  // Client-side search over a list: <input class="filter" data-filter="ID">
  document.querySelectorAll("input.filter").forEach((input) => {
    input.addEventListener("input", () => {
      const needle = input.value.trim().toLowerCase();
      const container = document.getElementById(input.dataset.filter);
      container.querySelectorAll(":scope > tr, :scope > label").forEach((row) => {
        row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
      });
    });
  });

  // Confirmation for destructive forms and buttons.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => { if (!confirm(form.dataset.confirm)) event.preventDefault(); });
  });
  document.querySelectorAll("button[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => { if (!confirm(button.dataset.confirm)) event.preventDefault(); });
  });

  // Inline validation of agent IP ranges: <input data-validate="URL" id="X"> with <p id="X-error">.
  document.querySelectorAll("input[data-validate]").forEach((input) => {
    const message = document.getElementById(`${input.id}-error`);
    let timer;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const response = await fetch(`${input.dataset.validate}?value=${encodeURIComponent(input.value)}`);
        const result = await response.json();
        message.textContent = result.message;
        message.hidden = result.ok;
        input.setAttribute("aria-invalid", result.ok ? "false" : "true");
      }, 250);
    });
  });

  // Package upload with a progress bar.
  const packageForm = document.getElementById("package-form");
  if (packageForm && window.FormData && window.XMLHttpRequest) {
    packageForm.addEventListener("submit", (event) => {
      const file = document.getElementById("payload");
      if (!file.files.length) return;  // nothing large to show: a plain post
      event.preventDefault();
      const bar = document.getElementById("upload-progress");
      const error = document.getElementById("upload-error");
      const request = new XMLHttpRequest();
      request.open("POST", packageForm.action);
      request.setRequestHeader("Accept", "application/json");
      bar.hidden = false;
      request.upload.onprogress = (e) => {
        if (e.lengthComputable) bar.firstElementChild.style.width = `${Math.round((100 * e.loaded) / e.total)}%`;
      };
      request.onload = () => {
        const result = JSON.parse(request.responseText || "{}");
        if (request.status === 200 && result.location) { window.location.href = result.location; return; }
        error.textContent = result.error || `Upload failed (${request.status})`;
        error.hidden = false;
        bar.hidden = true;
      };
      request.onerror = () => { error.textContent = "Upload failed: connection lost"; error.hidden = false; };
      request.send(new FormData(packageForm));
    });
  }

  // Jobs page: the list of containers refreshes itself (progress bars, statuses).
  const containers = document.querySelector("#containers[data-live]");
  if (containers) {
    setInterval(async () => {
      try {
        const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector("#containers tbody");
        if (fresh) containers.querySelector("tbody").replaceWith(fresh);
      } catch (error) { /* the next round tries again */ }
    }, 5000);
  }

  // The outcome bar, drawn as the server draws it (templates/_lists.html).
  const renderOutcome = (holder, outcomes) => {
    if (!holder) return;
    const parts = Object.entries(outcomes).filter(([, count]) => count > 0);
    const svg = "http://www.w3.org/2000/svg";
    const bar = document.createElementNS(svg, "svg");
    bar.setAttribute("class", "bar");
    bar.setAttribute("viewBox", `0 0 ${Math.max(parts.reduce((sum, [, count]) => sum + count, 0), 1)} 1`);
    bar.setAttribute("preserveAspectRatio", "none");
    bar.setAttribute("aria-hidden", "true");
    const legend = document.createElement("span");
    legend.className = "legend";
    let x = 0;
    for (const [name, count] of parts) {
      const part = document.createElementNS(svg, "rect");
      part.setAttribute("class", `part ${name}`);
      part.setAttribute("x", x);
      part.setAttribute("width", count);
      part.setAttribute("height", 1);
      const title = document.createElementNS(svg, "title");
      title.textContent = `${count} ${name}`;
      part.append(title);
      bar.append(part);
      x += count;
      const key = document.createElement("span");
      key.className = `key ${name}`;
      key.textContent = `${count.toLocaleString()} ${name}`;
      legend.append(key);
    }
    if (!parts.length) legend.textContent = "no jobs";
    const outcome = holder.querySelector(".outcome");
    outcome.setAttribute("aria-label", parts.map(([name, count]) => `${count} ${name}`).join(", "));
    outcome.replaceChildren(bar, legend);
  };

  // Live pages: Server-Sent Events where the browser has them, polling otherwise.
  const live = (eventsUrl, handlers, poll) => {
    if (window.EventSource && eventsUrl) {
      const source = new EventSource(eventsUrl);
      for (const [name, handle] of Object.entries(handlers)) {
        source.addEventListener(name, (event) => handle(JSON.parse(event.data)));
      }
      source.addEventListener("gone", () => source.close());
      return;
    }
    if (poll) setInterval(poll, 2000);
  };

  // Job container page: its summary and the rows of its jobs, each updated when it changed.
  const container = document.getElementById("container");
  if (container && container.dataset.stateUrl) {
    const showContainer = (data) => {
      document.getElementById("status").textContent = data.status_label;
      document.getElementById("progress-text").textContent = `${data.progress} %`;
      renderOutcome(document.getElementById("outcome"), data.outcomes);
    };
    const showJob = async (job) => {
      const row = document.querySelector(`tr[data-job="${job.id}"]`);
      if (!row) return;
      const state = row.querySelector(".state span");
      state.textContent = job.state_label;
      state.className = `state-${job.state_class}`;
      row.className = `job-${job.state_class}`;
      row.querySelector(".why").textContent = job.why;
      row.querySelector(".code").textContent = job.return_code ?? "";
      const progress = job.download_progress;
      row.querySelector(".download").textContent =
        progress == null || job.final ? "" : progress > 100 ? "unpacked" : `${progress} %`;
      row.querySelector(".started").textContent = job.started;
      row.querySelector(".finished").textContent = job.finished;
      const output = document.querySelector(`tr[data-output-for="${job.id}"]`);
      const attempts = output.querySelector("table.attempts");  // a retried job's earlier attempts stay shown
      if (job.message !== null) {  // still running: the output so far comes along
        output.hidden = !job.message && !attempts;
        output.querySelector("pre.output").textContent = job.message;
      } else if (row.dataset.final !== "1") {  // just finished: fetch its whole output once
        row.dataset.final = "1";
        const text = await (await fetch(`${container.dataset.outputUrl}${job.id}/output`)).text();
        output.hidden = !text && !job.meaning && !attempts;
        output.querySelector("pre.output").textContent = text;
      }
    };
    const poll = async () => {
      try {
        const response = await fetch(container.dataset.stateUrl, { headers: { Accept: "application/json" } });
        if (!response.ok) return;
        const data = await response.json();
        showContainer(data);
        for (const job of data.jobs) await showJob(job);
      } catch (error) { /* the next round tries again */ }
    };
    live(container.dataset.eventsUrl, { container: showContainer, job: showJob }, poll);
  }

  // Dialogs: a button opens its <dialog>; Cancel (or Escape) closes it.
  document.querySelectorAll("button[data-open-dialog]").forEach((button) => {
    const dialog = document.getElementById(button.dataset.openDialog);
    button.addEventListener("click", () => dialog.showModal());
  });
  document.querySelectorAll("[data-close-dialog]").forEach((button) => {
    button.addEventListener("click", () => button.closest("dialog").close());
  });

  // Deployment Assistant: the container name follows the chosen packages until the admin types one.
  const assistantForm = document.getElementById("assistant");
  if (assistantForm) {
    const nameField = assistantForm.querySelector("input[name=name]");
    let typed = nameField.value !== "" && nameField.value !== nameField.dataset.suggested;
    nameField.addEventListener("input", () => { typed = nameField.value !== ""; });
    const suggest = () => {
      if (typed) return;
      const chosen = [...assistantForm.querySelectorAll("input[data-label]:checked")].map((box) => box.dataset.label);
      nameField.value = chosen.join(", ").slice(0, 255);
      nameField.dataset.suggested = nameField.value;
    };
    assistantForm.querySelectorAll("input[data-label]").forEach((box) => box.addEventListener("change", suggest));
  }

  // Dashboard: each part is replaced when it changed.
  const dashboard = document.getElementById("dashboard");
  if (dashboard) {
    const parts = {};
    document.querySelectorAll("[data-live-part]").forEach((part) => {
      parts[part.dataset.livePart] = (html) => { part.innerHTML = html; };
    });
    live(dashboard.dataset.eventsUrl, parts, () => window.location.reload());
  }
});
