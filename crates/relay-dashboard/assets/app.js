// The dashboard page: one document that draws the runs list, a run, or one agent,
// from the JSON API, and keeps it current from the live stream without reloading.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("t") || "";
  // A fresh value per page load: tests compare it to prove the page never reloaded.
  window.relayPageLoad = Math.random().toString(36).slice(2);
  const withToken = (path) => path + (path.includes("?") ? "&" : "?") + "t=" + encodeURIComponent(token);
  const app = document.getElementById("app");

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const badge = (state) => el("span", { class: "badge " + state, "data-state": state }, String(state).replace("_", " "));
  function dur(ms) {
    if (ms === null || ms === undefined) return "-";
    if (ms < 1000) return ms + "ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + "s";
    return Math.floor(ms / 60000) + "m" + String(Math.floor((ms % 60000) / 1000)).padStart(2, "0") + "s";
  }
  const runHref = (id) => withToken("/runs/" + encodeURIComponent(id));
  const stepHref = (id, step) => withToken("/runs/" + encodeURIComponent(id) + "/steps/" + encodeURIComponent(step));
  function header(...crumbs) {
    return el("header", { class: "top" }, el("a", { href: withToken("/") }, "agent-relay"), ...crumbs.map((c) => el("span", { class: "crumb" }, c)));
  }
  function live(path, handlers) {
    const es = new EventSource(withToken(path));
    // The server stops (its run ended): what it sent last stays on the page.
    es.addEventListener("bye", () => es.close());
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (e) => { try { fn(JSON.parse(e.data)); } catch (err) { console.error(err); } });
    }
    return es;
  }
  async function api(path, body) {
    const res = await fetch(withToken(path), body === undefined ? {} : {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({ error: res.statusText }));
    if (!res.ok) throw new Error(data.error || res.statusText);
    return data;
  }
  function notify(text, error) {
    const n = document.getElementById("notice");
    if (!n) return;
    n.textContent = text;
    n.className = error ? "error" : "";
  }
  async function act(path, body, after) {
    try {
      const r = await api(path, body);
      notify(r.ok || "done");
      if (after) after();
    } catch (e) {
      notify(e.message, true);
    }
  }

  // ---- the runs in this directory ----
  function runsPage() {
    const body = el("tbody", { id: "runs" });
    app.replaceChildren(header("runs"), el("main", {}, el("h1", {}, "Runs"),
      el("table", {}, el("thead", {}, el("tr", {}, ["run", "workflow", "status", "started", "duration", "steps"].map((h) => el("th", {}, h)))), body)));
    let all = [];
    const draw = (rows) => {
      all = rows;
      if (!rows.length) {
        body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty" }, "no runs in this directory yet")));
        return;
      }
      body.replaceChildren(...rows.map((r) => el("tr", { "data-run": r.runId, "data-status": r.status },
        el("td", {}, el("a", { href: runHref(r.runId) }, r.runId)),
        el("td", {}, r.workflow), el("td", {}, badge(r.status)), el("td", {}, r.startedAt || "-"),
        el("td", {}, dur(r.durationMs)),
        el("td", {}, `${r.done}/${r.steps} done` + (r.failed ? `, ${r.failed} failed` : "") + (r.running ? `, ${r.running} running` : "")))));
    };
    // The stream sends every row first, then only the rows that changed.
    const merge = (change) => {
      const byId = new Map(all.map((r) => [r.runId, r]));
      for (const id of change.removed) byId.delete(id);
      for (const r of change.changed) byId.set(r.runId, r);
      draw([...byId.values()].sort((a, b) => (a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0)));
    };
    live("/api/runs/stream", { runs: draw, rows: merge });
  }

  // ---- one run ----
  const seen = {};
  function runPage(id) {
    const main = el("main", {});
    app.replaceChildren(header(id), main);
    const base = "/api/runs/" + encodeURIComponent(id);
    let run = null, questionKey = null, approvalKey = null;
    const parts = {
      head: el("div", { id: "head" }), notice: el("div", { id: "notice" }), graph: el("div", { id: "graph", class: "card" }),
      steps: el("tbody", { id: "steps" }), timeline: el("div", { id: "timeline", class: "timeline" }),
      questions: el("div", { id: "questions" }), approvals: el("div", { id: "approvals" }),
      approver: el("input", { type: "text", id: "approver", name: "by", size: 18, placeholder: "decide as (default: the server's user)" }),
      messages: el("tbody", { id: "messages" }), trajectory: el("div", { id: "trajectory" }),
    };
    const send = el("form", { id: "send", class: "inline", onsubmit: (e) => {
      e.preventDefault();
      const to = send.querySelector("[name=to]"), text = send.querySelector("[name=text]");
      act(base + "/send", { to: to.value, text: text.value }, () => { text.value = ""; });
    } }, el("input", { type: "text", name: "to", placeholder: "agent, #channel or *", size: 16 }),
      el("input", { type: "text", name: "text", placeholder: "message" }), el("button", { type: "submit" }, "Send"));
    main.append(parts.head, parts.notice, el("h2", {}, "Steps"), parts.graph,
      el("table", {}, el("thead", {}, el("tr", {}, ["step", "state", "attempts", "agent", "duration", "verification", "reason"].map((h) => el("th", {}, h)))), parts.steps),
      el("h2", {}, "Questions and approvals"), parts.approvals, parts.questions,
      el("h2", {}, "Attempts"), parts.timeline,
      el("h2", {}, "Messages"), send,
      el("table", {}, el("thead", {}, el("tr", {}, ["id", "from", "to", "state", "text"].map((h) => el("th", {}, h)))), parts.messages),
      el("h2", {}, "Trajectory"), parts.trajectory);
    parts.graph.addEventListener("click", (e) => {
      const g = e.target.closest("[data-step]");
      if (g) location.href = stepHref(id, g.getAttribute("data-step"));
    });
    const drawHead = () => {
      const isLive = run.status === "running";
      parts.head.dataset.paused = run.paused ? "true" : "false";
      parts.head.replaceChildren(el("h1", {}, run.workflow || run.runId, " ", badge(run.status), run.paused ? [" ", badge("paused")] : null),
        el("div", { class: "meta" }, el("span", {}, "run " + run.runId), el("span", {}, "pattern " + (run.pattern || "-")),
          el("span", {}, "started " + (run.startedAt || "-")), el("span", {}, (isLive ? "running for " : "took ") + dur(run.durationMs)),
          run.reason ? el("span", {}, "reason: " + run.reason) : null,
          isLive ? el("button", { id: "pause", onclick: () => act(base + "/pause", { paused: !run.paused, by: parts.approver.value }) },
            run.paused ? "Unpause" : "Pause") : null,
          isLive ? el("button", { id: "cancel", class: "danger", onclick: () => {
            if (confirm("Cancel this run? Its agents are ended.")) act(base + "/cancel", {});
          } }, "Cancel run") : null));
    };
    const stepRow = (s) => {
      const states = (seen[s.name] = seen[s.name] || []);
      if (states[states.length - 1] !== s.status) states.push(s.status);
      const check = s.verification ? `${s.verification.type}${s.verification.value !== undefined ? ": " + s.verification.value : ""}` : "exit 0";
      const verdict = s.status === "completed" ? " ✓" : s.status === "failed" ? " ✗" : "";
      return el("tr", { "data-step": s.name, "data-state": s.status, "data-seen": states.join(" ") },
        el("td", {}, el("a", { href: stepHref(id, s.name) }, s.name), s.nodes.length ? el("div", { class: "meta" }, s.nodes.map((n) => el("a", { href: stepHref(id, n.label), "data-node": n.label }, n.label + " (" + n.status + ")"))) : null),
        el("td", {}, badge(s.status)), el("td", {}, s.attempts), el("td", {}, s.agent || "-"),
        el("td", {}, s.status === "completed" || s.status === "failed" ? dur(s.durationMs) : "-"),
        el("td", {}, check + verdict), el("td", {}, s.reason || ""));
    };
    // A box or chip of the drawing takes its step's new state without a new drawing.
    const recolour = (s) => {
      const paint = (g, cls, state) => {
        if (!g) return;
        g.setAttribute("class", cls + " " + state);
        g.dataset.state = state;
        const label = g.querySelector(":scope > text.state");
        if (label) label.textContent = state;
        const title = g.querySelector(":scope > title");
        if (title) title.textContent = g.dataset.step + ": " + state;
      };
      paint(parts.graph.querySelector(`g.step[data-step="${CSS.escape(s.name)}"]`), "step", s.status);
      for (const n of s.nodes) paint(parts.graph.querySelector(`g.node[data-step="${CSS.escape(n.label)}"]`), "node", n.status);
    };
    const drawWaiting = () => {
      const qKey = run.questions.map((q) => q.step + "\u0000" + q.question).join("\u0001");
      if (qKey !== questionKey) {
        questionKey = qKey;
        parts.questions.replaceChildren(...run.questions.map((q) => {
          const form = el("form", { class: "inline answer", "data-step": q.step, onsubmit: (e) => {
            e.preventDefault();
            const text = form.querySelector("textarea");
            act(base + "/answer", { step: q.step, text: text.value });
          } }, el("textarea", { name: "text", rows: 2, placeholder: "your answer" }), el("button", { type: "submit" }, "Answer"));
          return el("div", { class: "question", "data-step": q.step }, el("strong", {}, q.step + " asks: "), q.question, form);
        }));
      }
      const aKey = run.approvals.map((a) => a.step + "\u0000" + a.approvers.join(",")).join("\u0001") + (run.status === "running");
      if (aKey !== approvalKey) {
        approvalKey = aKey;
        const asWho = run.approvals.length ? [el("div", { class: "inline" }, parts.approver)] : [];
        parts.approvals.replaceChildren(...asWho, ...run.approvals.map((a) => {
          const reason = el("input", { type: "text", name: "reason", placeholder: "reason (optional)" });
          const decide = (approved) => act(base + "/decide", { step: a.step, approved, reason: reason.value, by: parts.approver.value });
          return el("div", { class: "approval", "data-step": a.step },
            el("strong", {}, a.step), " waits for approval",
            a.approvers.length ? " (approvers: " + a.approvers.join(", ") + ")" : "",
            a.timeoutMs ? " (decided by itself after " + dur(a.timeoutMs) + ")" : "",
            el("div", { class: "inline" }, reason,
              el("button", { type: "button", class: "approve", onclick: () => decide(true) }, "Approve"),
              el("button", { type: "button", class: "reject danger", onclick: () => decide(false) }, "Reject")));
        }));
      }
      if (!run.questions.length && !run.approvals.length) {
        parts.questions.replaceChildren(el("div", { class: "empty" }, "nothing waits for a person"));
        questionKey = null;
      }
    };
    const drawTimeline = () => {
      const total = Math.max(run.durationMs || 0, ...run.attempts.map((a) => a.endMs || a.startMs), 1);
      const lanes = {};
      for (const a of run.attempts) (lanes[a.node] = lanes[a.node] || []).push(a);
      parts.timeline.replaceChildren(...(run.attempts.length ? Object.entries(lanes).map(([node, list]) => el("div", { class: "lane" },
        el("span", { class: "label" }, node), el("div", { class: "track" }, list.map((a) => {
          const end = a.endMs === null ? total : a.endMs;
          return el("div", { class: "bar " + a.end, title: `${node} attempt ${a.attempt}: ${a.end}${a.reason ? " (" + a.reason + ")" : ""}`,
            style: `left:${(100 * a.startMs / total).toFixed(2)}%;width:${(100 * (end - a.startMs) / total).toFixed(2)}%` });
        })))) : [el("div", { class: "empty" }, "no attempts yet")]));
    };
    const messageRow = (m) => el("tr", { "data-message": m.id },
      el("td", {}, m.id), el("td", {}, m.from), el("td", {}, m.to), el("td", {}, badge(m.state)),
      el("td", {}, m.text, m.reason ? el("div", { class: "meta" }, m.reason) : null));
    const drawMessages = () => parts.messages.replaceChildren(...(run.messages.length ? run.messages.map(messageRow)
      : [el("tr", {}, el("td", { colspan: 5, class: "empty" }, "no messages"))]));
    const drawTrajectory = () => parts.trajectory.replaceChildren(...(run.trajectory.length ? [el("table", {}, el("tbody", {}, run.trajectory.map((d) =>
      el("tr", {}, el("td", {}, d.step || "run"), el("td", {}, d.decision), el("td", {}, d.reason), el("td", {}, d.evidence || "")))))] : [el("div", { class: "empty" }, "no decisions recorded")]));
    // The whole run: the stream's first event (and again if the run's log was replaced).
    const full = (r) => {
      run = r;
      questionKey = approvalKey = null;
      drawHead();
      parts.graph.innerHTML = run.graphSvg;
      parts.steps.replaceChildren(...run.steps.map(stepRow));
      drawWaiting(); drawTimeline(); drawMessages(); drawTrajectory();
    };
    // What changed since: only the parts it names are drawn again.
    const patch = (p) => {
      if (!run) return;
      if (p.head) { Object.assign(run, p.head); drawHead(); }
      if (p.graphSvg !== undefined) { run.graphSvg = p.graphSvg; parts.graph.innerHTML = p.graphSvg; }
      for (const s of p.steps || []) {
        const i = run.steps.findIndex((x) => x.name === s.name);
        if (i >= 0) run.steps[i] = s; else run.steps.push(s);
        const row = parts.steps.querySelector(`tr[data-step="${CSS.escape(s.name)}"]`);
        if (row) row.replaceWith(stepRow(s)); else parts.steps.append(stepRow(s));
        recolour(s);
      }
      if (p.questions) run.questions = p.questions;
      if (p.approvals) run.approvals = p.approvals;
      if (p.questions || p.approvals || p.head) drawWaiting();
      for (const a of p.attempts || []) { const { index, ...span } = a; run.attempts[index] = span; }
      if (p.attempts || p.head) drawTimeline();
      if (p.messages) {
        for (const m of p.messages) {
          const i = run.messages.findIndex((x) => x.id === m.id);
          if (i >= 0) run.messages[i] = m; else run.messages.push(m);
        }
        run.messages.sort((a, b) => a.id - b.id);
        drawMessages();
      }
      if (p.trajectory) { run.trajectory.splice(p.trajectory.from, Infinity, ...p.trajectory.items); drawTrajectory(); }
    };
    live(base + "/stream", { run: full, patch });
  }

  // ---- one agent ----
  function stepPage(id, step) {
    const main = el("main", {});
    app.replaceChildren(header(el("a", { href: runHref(id), style: "color:#aab" }, id), step), main);
    const head = el("div", { id: "head" }), screen = el("pre", { id: "screen", class: "screen" }),
      transcript = el("pre", { id: "transcript", class: "transcript card" }), outputs = el("div", { id: "outputs" }),
      stderr = el("pre", { id: "stderr", class: "card" }), output = el("pre", { id: "output", class: "card" });
    const send = el("form", { id: "send", class: "inline", onsubmit: (e) => {
      e.preventDefault();
      const text = send.querySelector("[name=text]");
      act("/api/runs/" + encodeURIComponent(id) + "/send", { to: send.dataset.agent || "", text: text.value }, () => { text.value = ""; });
    } }, el("input", { type: "text", name: "text", placeholder: "message to this agent" }), el("button", { type: "submit" }, "Send"));
    main.append(head, el("div", { id: "notice" }), el("h2", {}, "Terminal"), screen, send, el("h2", {}, "Transcript"), transcript,
      el("h2", {}, "Output"), output, el("h2", {}, "Attempts"), outputs, el("h2", {}, "stderr"), stderr);
    screen.textContent = "(no terminal: this agent runs one-shot, or has not started)";
    // The stream sends the visible rows when they change and only the history rows not
    // sent before; the page keeps the history (as the server does, the newest rows).
    let hist = [], histFirst = 0, attempt = null;
    const drawScreen = (p) => {
      if (p.attempt !== attempt || p.historyFrom !== histFirst + hist.length) {
        attempt = p.attempt;
        hist = [];
        histFirst = p.historyFrom;
      }
      hist.push(...p.history);
      if (p.historyFirst > histFirst) {
        hist.splice(0, Math.min(hist.length, p.historyFirst - histFirst));
        histFirst = p.historyFirst;
      }
      screen.textContent = p.rows.join("\n");
      screen.dataset.attempt = p.attempt;
      transcript.textContent = hist.concat(p.rows).join("\n").replace(/\n+$/, "");
    };
    const draw = (d) => {
      if (d.agent) send.dataset.agent = d.agent;
      head.replaceChildren(el("h1", {}, step, " ", badge(d.status)),
        el("div", { class: "meta" }, el("span", {}, "agent " + (d.agent || "-")), el("span", {}, d.attempts.length + " attempt(s)"),
          d.reason ? el("span", {}, "reason: " + d.reason) : null));
      output.textContent = d.output || "(none yet)";
      stderr.textContent = d.stderr || "(empty)";
      outputs.replaceChildren(...d.attempts.map((a) => el("details", { open: a.attempt === d.attempts.length, "data-attempt": a.attempt },
        el("summary", {}, "attempt " + a.attempt + (a.transcript ? " (terminal)" : "")), el("pre", { class: "card" }, a.output || "(no output kept)"))));
      if (!d.attempts.some((a) => a.transcript) && transcript.textContent === "") transcript.textContent = d.output || "";
    };
    const base = "/api/runs/" + encodeURIComponent(id) + "/steps/" + encodeURIComponent(step);
    live(base + "/stream", { step: draw, screen: drawScreen });
  }

  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "runs" && parts.length === 2) runPage(parts[1]);
  else if (parts[0] === "runs" && parts[2] === "steps" && parts.length === 4) stepPage(parts[1], parts[3]);
  else runsPage();
})();
