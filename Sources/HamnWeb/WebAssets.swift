/// The view's page, script and style, embedded in the binary: nothing is loaded from anywhere
/// else (no CDN, no font, no framework). The script only reads (`/events`, `/timeline/...`).
enum WebAssets {
    static let page = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>hamn-events</title>
        <link rel="icon" href="data:,">
        <link rel="stylesheet" href="/app.css">
        <script src="/app.js" defer></script>
        </head>
        <body>
        <header>
          <h1>hamn-events <span id="node"></span></h1>
          <span id="connection" class="stale">connecting…</span>
          <span class="readonly">read-only view</span>
        </header>
        <main>
        <section id="cluster-panel">
          <h2>Cluster</h2>
          <div class="row"><span class="label">Members</span><ul id="members"></ul></div>
          <div class="row"><span class="label">Quorum</span><span id="quorum"></span></div>
          <ul id="warnings"></ul>
        </section>
        <section id="running-panel">
          <h2>Running event</h2>
          <div id="running" data-event=""></div>
        </section>
        <section id="queue-panel">
          <h2>Queue</h2>
          <ol id="queue"></ol>
        </section>
        <section id="instances-panel">
          <h2>Instances on this node</h2>
          <table id="instances"><thead><tr><th>Event</th><th>Instance</th><th>Armed</th><th>Last value</th><th>Recent</th></tr></thead><tbody></tbody></table>
        </section>
        <section id="monitors-panel">
          <h2>Failing monitors</h2>
          <ul id="monitors"></ul>
        </section>
        <section id="history-panel" class="wide">
          <h2>History <small>(newest first; choose an event to see its timeline)</small></h2>
          <table id="history"><thead><tr><th>Run</th><th>Event</th><th>Name</th><th>Node</th><th>Outcome</th><th>Started</th><th>Finished</th></tr></thead><tbody></tbody></table>
        </section>
        <section id="timeline-panel" class="wide">
          <h2>Timeline <span id="timeline-title"></span></h2>
          <div id="timeline" data-event=""><p class="empty">no event yet</p></div>
        </section>
        </main>
        </body>
        </html>
        """

    static let script = #"""
        "use strict";
        const $ = (id) => document.getElementById(id);
        let selected = null;       // {run, id} chosen by the admin; null: the newest event
        let runningEvents = new Set(); // "run/id" of the events still running
        let shownTimeline = "";

        function el(tag, attrs, ...children) {
          const e = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) {
            if (k === "class") e.className = v; else e.setAttribute(k, v);
          }
          for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
          return e;
        }

        function outcomeOf(event) {
          if (event.outcome) return event.outcome;
          if (event.failure) return "held";
          return event.started_at ? "running" : "queued";
        }

        function clock(stamp) {
          return stamp ? new Date(stamp).toLocaleTimeString() : "";
        }

        function sparkline(values) {
          const w = 120, h = 22;
          const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
          svg.setAttribute("class", "sparkline");
          svg.setAttribute("width", w); svg.setAttribute("height", h);
          if (values.length < 2) return svg;
          svg.setAttribute("aria-label", "last " + values.length + " samples, from " + Math.min(...values) +
            " to " + Math.max(...values));
          const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
          const pts = values.map((v, i) =>
            (i * (w - 2) / (values.length - 1) + 1).toFixed(1) + "," + (h - 2 - (v - lo) / span * (h - 4)).toFixed(1));
          const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
          line.setAttribute("points", pts.join(" "));
          svg.append(line);
          return svg;
        }

        function render(snapshot) {
          const s = snapshot.status, history = (snapshot.history && snapshot.history.events) || [];
          $("node").textContent = "— node " + s.node + " (" + s.transport + ")";
          const members = $("members");
          members.replaceChildren(...s.members.map((m) =>
            el("li", {"data-node": m, class: m === s.node ? "member self" : "member"}, m)));
          const q = $("quorum");
          q.textContent = s.quorate ? "yes" : "NO: no recovery program runs";
          q.className = s.quorate ? "ok" : "bad";
          const warnings = [];
          if (s.journal_problem) warnings.push("JOURNAL: " + s.journal_problem);
          if (s.fencing_warning) warnings.push(s.fencing_warning);
          for (const d of s.configuration_differences || []) warnings.push(d);
          for (const f of s.fencing || []) warnings.push("fencing " + f.node + ": by " + (f.fencer || "nobody yet") +
            (f.failures ? ", failed " + f.failures + " time(s): " + (f.last_error || "") : ""));
          if ((s.recovery_off || []).length) warnings.push("recovery off: " + s.recovery_off.join(" "));
          $("warnings").replaceChildren(...warnings.map((w) => el("li", {class: "warning"}, w)));

          const running = $("running");
          const run = (s.running || [])[0];
          if (run) {
            running.setAttribute("data-event", String(run.id));
            running.setAttribute("data-state", run.failed_on ? "held" : "running");
            const waits = run.failed_on
              ? el("div", {class: "bad"}, "FAILED on " + run.failed_on + ": held until `hamn-events resume`")
              : el("div", {class: "waiting"}, "barrier: waiting for ",
                  ...run.waiting_for.map((n) => el("span", {class: "waits-for", "data-node": n}, n)));
            running.replaceChildren(
              el("div", {class: "event-name"}, run.name + " state " + run.state + " node " + run.node),
              el("div", {}, "event " + run.id + " (" + run.display_name + "), segment " + run.segment +
                " of segments 0-" + (run.segments - 1)),
              waits);
          } else {
            running.setAttribute("data-event", "");
            running.removeAttribute("data-state");
            running.replaceChildren(el("span", {class: "idle"}, "nothing is running"));
          }

          const queue = $("queue");
          queue.replaceChildren(...(s.queue || []).map((e) =>
            el("li", {"data-event": String(e.id)}, e.name + " state " + e.state + " node " + e.node)));
          if (!(s.queue || []).length) queue.replaceChildren(el("li", {class: "idle"}, "no event waits"));

          const tbody = $("instances").tBodies[0];
          tbody.replaceChildren(...(s.instances || []).map((i) => {
            const key = i.event + "/" + i.state + "/" + i.instance;
            const ring = i.recent || [];
            return el("tr", {"data-instance": key, "data-samples": String(ring.length)},
              el("td", {}, i.event + " state " + i.state), el("td", {}, i.instance),
              el("td", {class: i.armed ? "ok" : "idle"}, i.armed ? "armed" : "disarmed"),
              el("td", {}, i.last == null ? "none yet" : i.last), el("td", {}, sparkline(ring)));
          }));
          if (!(s.instances || []).length) {
            tbody.replaceChildren(el("tr", {}, el("td", {colspan: "5", class: "idle"},
              "no instance sampled yet (no monitored definition, or no sample so far)")));
          }

          const failing = Object.entries(s.monitor_failures || {}).sort();
          $("monitors").replaceChildren(...failing.map(([v, m]) => el("li", {"data-variable": v, class: "bad"}, v + ": " + m)));
          if (!failing.length) $("monitors").replaceChildren(el("li", {class: "idle"}, "none"));

          const rows = history.map((e) => {
            const outcome = outcomeOf(e);
            const link = el("a", {href: "#timeline", "data-run": String(e.run), "data-event": String(e.id)}, e.name);
            link.addEventListener("click", () => { selected = {run: e.run, id: e.id}; loadTimeline(); });
            return el("tr", {"data-run": String(e.run), "data-event": String(e.id), "data-outcome": outcome},
              el("td", {}, e.run), el("td", {}, e.id), el("td", {}, link), el("td", {}, e.node.name),
              el("td", {class: "outcome " + outcome}, outcome),
              el("td", {}, clock(e.started_at)), el("td", {}, clock(e.finished_at)));
          });
          $("history").tBodies[0].replaceChildren(...rows);
          runningEvents = new Set(history.filter((e) => outcomeOf(e) === "running").map((e) => e.run + "/" + e.id));
          if (!selected && history.length) latest = {run: history[0].run, id: history[0].id};
          loadTimeline();
        }

        let latest = null;
        let loading = false, again = false;
        async function loadTimeline() {
          const which = selected || latest;
          if (!which) return;
          if (loading) { again = true; return; }
          loading = true;
          try {
            const answer = await fetch("/timeline/" + which.run + "/" + which.id, {cache: "no-store"});
            const text = answer.ok ? await answer.text() : "";
            if (text && text !== shownTimeline) {
              shownTimeline = text;
              const holder = $("timeline");
              const svg = new DOMParser().parseFromString(text, "image/svg+xml").documentElement;
              holder.replaceChildren(document.importNode(svg, true));
              holder.setAttribute("data-event", String(which.id));
              holder.setAttribute("data-run", String(which.run));
              $("timeline-title").textContent = "— run " + which.run + " event " + which.id +
                (selected ? "" : " (the newest)") +
                (runningEvents.has(which.run + "/" + which.id) ? ": running, each command appears as it ends" : "");
            }
          } catch (e) { /* the next update tries again */ }
          loading = false;
          if (again) { again = false; loadTimeline(); }
        }

        function connect() {
          const source = new EventSource("/events");
          source.onopen = () => { $("connection").textContent = "live"; $("connection").className = "live"; };
          source.onmessage = (message) => render(JSON.parse(message.data));
          source.onerror = () => {
            $("connection").textContent = "disconnected: retrying";
            $("connection").className = "stale";
          };
        }
        connect();
        """#

    static let style = """
        :root { --ok: #1a7f37; --bad: #c62828; --wait: #b26a00; --line: #d0d7de; --muted: #57606a; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; background: #f6f8fa; }
        header { display: flex; gap: 16px; align-items: baseline; padding: 10px 20px; background: #24292f; color: #fff; }
        header h1 { margin: 0; font-size: 18px; flex: 1; }
        header .readonly { color: #bbb; font-size: 12px; }
        #connection.live { color: #7ee787; } #connection.stale { color: #ffa198; }
        main { display: grid; grid-template-columns: repeat(auto-fit, minmax(330px, 1fr)); gap: 14px; padding: 14px 20px; }
        section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 0; overflow-x: auto; }
        section.wide { grid-column: 1 / -1; overflow-x: auto; }
        #instances-panel { grid-column: span 2; }
        h2 { margin: 0 0 8px; font-size: 15px; } h2 small { color: var(--muted); font-weight: normal; }
        .row { display: flex; gap: 10px; align-items: baseline; margin: 4px 0; }
        .label { color: var(--muted); width: 70px; }
        #members { display: flex; gap: 6px; list-style: none; margin: 0; padding: 0; flex-wrap: wrap; }
        .member { padding: 1px 8px; border-radius: 10px; background: #ddf4ff; border: 1px solid #54aeff; }
        .member.self { font-weight: bold; }
        .ok { color: var(--ok); } .bad { color: var(--bad); font-weight: bold; } .idle { color: var(--muted); }
        .warning { color: var(--wait); }
        #warnings { margin: 4px 0 0; padding-left: 18px; }
        .event-name { font-size: 16px; font-weight: bold; }
        #running[data-state="running"] { border-left: 4px solid var(--wait); padding-left: 8px; }
        #running[data-state="held"] { border-left: 4px solid var(--bad); padding-left: 8px; }
        .waiting { color: var(--wait); margin-top: 4px; }
        .waits-for { display: inline-block; margin-right: 4px; padding: 0 6px; border: 1px solid var(--wait); border-radius: 8px; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
        th { color: var(--muted); font-weight: 600; }
        td.idle { white-space: normal; }
        td.outcome.completed { color: var(--ok); } td.outcome.failed, td.outcome.held, td.outcome.interrupted { color: var(--bad); font-weight: bold; }
        td.outcome.running { color: var(--wait); font-weight: bold; }
        #history a { color: #0969da; cursor: pointer; }
        tr[data-event]:hover { background: #f6f8fa; }
        .sparkline polyline { fill: none; stroke: #0969da; stroke-width: 1.5; }
        #queue, #monitors { margin: 0; padding-left: 20px; }
        #queue li.idle, #monitors li.idle { list-style: none; margin-left: -20px; }
        #timeline svg { max-width: 100%; height: auto; }
        """
}
