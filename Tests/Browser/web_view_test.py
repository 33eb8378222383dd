#!/usr/bin/env python3
"""The web view in a real browser (Debian's chromium, headless, driven by playwright).

Starts `hamn-events run` (one engine, the local transport) with a rules file whose event has a
barrier, opens the view, triggers the event, and checks in the DOM that the view shows it
running, then completed, each within 1 s of the journal's time for it, and that the event's
timeline has the right lane, bars and barrier line. Saves screenshots of the view and of the
timeline. Prints 'N passed, N failed'; exits 1 on any failure (a missing chromium or playwright
is a failure, never a skip).

With --cluster DIR (a 3-node cluster that `scripts/ns-cluster up 3 DIR` made; root): three
engines, n1 to n3, `transport: corosync`, one in each node's namespace with its view on
127.0.0.1:9665 there; chromium runs in node1's namespace and loads node1's view. The same
checks, for three nodes: the members n1 n2 n3 with quorum, the barrier waiting for all three,
three lanes with a bar per command on each and the barrier line across all of them.
Screenshots get a `-3nodes` suffix. The caller takes the cluster down (`ns-cluster down DIR`).

Usage: web_view_test.py BINARY ARTEFACT_DIRECTORY [--cluster DIR]
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

CHROMIUM = "/usr/bin/chromium"
NS_CLUSTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts/ns-cluster")
LIMIT = 1.0  # seconds between the journal's time and the page showing it

passed = 0
failed = 0


def check(condition, what):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok: {what}")
    else:
        failed += 1
        print(f"FAILED: {what}")


def finish():
    print(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 and passed > 0 else 1)


def main():
    binary, artefacts = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(artefacts, exist_ok=True)
    if not os.access(CHROMIUM, os.X_OK):
        check(False, f"{CHROMIUM} is installed (apt-get install chromium; scripts/setup does)")
        finish()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        check(False, "playwright is installed (pip install playwright; scripts/setup does)")
        finish()

    cluster = None
    if len(sys.argv) == 5 and sys.argv[3] == "--cluster":
        cluster = os.path.abspath(sys.argv[4])
    elif len(sys.argv) != 3:
        check(False, "usage: web_view_test.py BINARY ARTEFACT_DIRECTORY [--cluster DIR]")
        finish()
    nodes = ["n1", "n2", "n3"] if cluster else ["n1"]
    suffix = "-3nodes" if cluster else ""

    root = tempfile.mkdtemp(prefix="hamn-browser-")
    services = []
    try:
        for d in ["etc", "etc/events", "state", "run", "out"]:
            os.makedirs(f"{root}/{d}", mode=0o755)
        os.chmod(root, 0o755)
        out = f"{root}/out"
        # takeover: segment 0 takes 1.5 s on every node, a barrier, then segment 1.
        with open(f"{root}/etc/takeover_0.rp", "w") as f:
            f.write(f'all "/bin/sleep 1.5" 0 NULL\nbarrier\nall "/bin/touch {out}/done" 0 NULL\n')
        # paging_high watches a variable read from a file (never over 1000: it only feeds the
        # instances panel and its sparkline).
        with open(f"{root}/etc/noop_0.rp", "w") as f:
            f.write('all "/bin/true" 0 NULL\n')
        with open(f"{out}/paging", "w") as f:
            f.write("40\n")
        with open(f"{root}/etc/rules.hacmprd", "w") as f:
            f.write("\n".join(["takeover", "0", f"{root}/etc/takeover_0.rp", "2", "0", "", "", "", ""]) + "\n")
            f.write("\n".join(["paging_high", "0", f"{root}/etc/noop_0.rp", "2", "0",
                               "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X > 1000", "X < 900"]) + "\n")
        # Node K's engine: its socket, journal and log in root (the namespaces share the file
        # system), its view on 127.0.0.1:9665 in its own namespace (any free port with one engine).
        if cluster:
            members = "".join(f"  - {{name: {n}, number: {k + 1}}}\n" for k, n in enumerate(nodes))
            common = (f"nodes:\n{members}transport: corosync\ncorosync:\n"
                      f"  group: hamn-browser-{os.getpid()}\n  form_timeout: 3s\nhttp: {{port: 9665}}\n")
        else:
            common = "http: {port: 0}\n"
        for k, node in enumerate(nodes, start=1):
            with open(f"{root}/{node}.yaml", "w") as f:
                f.write(f"node: {node}\nrules: {root}/etc/rules.hacmprd\njournal: {root}/state/{node}.sqlite\n"
                        f"socket: {root}/run/{node}.sock\nconfig_too_long: 300s\n{common}"
                        f"variables:\n  - name: IBM.PSSP.aixos.PagSp.%totalused\n    command: /bin/cat {out}/paging\n"
                        "    interval: 0.2s\n")
            run = [binary, "run", "--config", f"{root}/{node}.yaml"]
            if cluster:
                run = [NS_CLUSTER, "exec", cluster, str(k)] + run
            log = open(f"{root}/{node}.log", "w")
            services.append((node, subprocess.Popen(run, stdout=log, stderr=log)))
        journal = f"{root}/state/n1.sqlite"

        def cli(*args, node="n1"):
            return subprocess.run([binary, args[0], "--socket", f"{root}/run/{node}.sock", *args[1:]],
                                  capture_output=True, text=True)

        def answer(node):
            """The engine's `status --format json` once it answers and its view listens (30 s at
            most: a loaded machine starts it slowly), or its last answer, or None. (The control
            socket opens just before the view's listener: `status` says `off` in between.)"""
            deadline = time.monotonic() + 30
            last = None
            while time.monotonic() < deadline:
                status = cli("status", "--format", "json", node=node)
                if status.returncode == 0:
                    last = json.loads(status.stdout)
                    if last["web"].get("url"):
                        break
                time.sleep(0.05)
            return last

        for node in nodes[1:]:
            check(answer(node) is not None, f"{node}'s engine answers on its control socket")
        status = answer("n1")
        url = status["web"].get("url") if status else None
        expected_url = "http://127.0.0.1:9665/" if cluster else "http://127.0.0.1:"
        check(url is not None and url.startswith(expected_url), f"status names the view's URL ({url})")
        if url is None:
            return

        # Chromium in node1's namespace: playwright talks to it through pipes, which the
        # namespace does not cut; 127.0.0.1 is then node1's loopback.
        chromium = CHROMIUM
        if cluster:
            namespace = subprocess.run([NS_CLUSTER, "netns", cluster, "1"], capture_output=True, text=True,
                                       check=True).stdout.strip()
            chromium = f"{root}/chromium-in-node1"
            with open(chromium, "w") as f:
                f.write(f'#!/bin/sh\nexec ip netns exec {namespace} {CHROMIUM} "$@"\n')
            os.chmod(chromium, 0o755)

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            outside = []
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(url) else None)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url)
            page.wait_for_selector('#members li[data-node="n1"]', timeout=5000)
            # The engines form the group (within form_timeout): every member shows, with quorum.
            page.wait_for_selector(f'#members li[data-node="{nodes[-1]}"]', timeout=10000)
            shown = page.locator("#members li").evaluate_all("els => els.map(e => e.dataset.node)")
            check(shown == nodes, f"the members are listed ({shown})")
            quorum = page.locator("#quorum")
            check(quorum.inner_text() == "yes" and quorum.get_attribute("class") == "ok",
                  f"quorum is shown ({quorum.inner_text()!r})")
            check(page.locator("#connection").inner_text() == "live", "the page is live (server-sent events)")
            check(page.locator("#running").get_attribute("data-event") == "", "nothing runs before the trigger")
            # The paging variable climbs: the instance's sparkline draws its recent samples.
            for value in [40, 42, 47, 55, 61, 58, 64]:
                with open(f"{out}/paging", "w") as f:
                    f.write(f"{value}\n")
                time.sleep(0.25)
            # (The page's CSP forbids eval: wait by selector, not by a script.)
            page.wait_for_selector('#instances tr[data-instance] td:nth-child(4):text-is("64")', timeout=5000)
            row = page.locator("#instances tr[data-instance]")
            check(row.count() == 1 and row.get_attribute("data-instance") == "paging_high/0/NodeNum=1",
                  f"the instance is listed ({row.count()} rows)")
            points = page.locator("#instances svg.sparkline polyline").get_attribute("points") or ""
            check(len(points.split()) >= 5, f"its sparkline draws its recent samples ({len(points.split())} points)")
            # The page records when it first shows each state (its clock is the service's: one machine).
            page.evaluate("""() => {
                window.seen = {};
                const note = () => {
                  const run = document.querySelector('#running');
                  if (run.dataset.event === '1' && !window.seen.running) window.seen.running = Date.now() / 1000;
                  const row = document.querySelector('#history tr[data-event="1"][data-outcome="completed"]');
                  if (row && !window.seen.completed) window.seen.completed = Date.now() / 1000;
                };
                new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true});
            }""")
            trigger = cli("trigger", "takeover")
            check(trigger.returncode == 0, f"trigger takeover ({trigger.stderr.strip()})")
            page.wait_for_selector('#running[data-event="1"]', timeout=5000)
            waits = page.locator("#running .waiting").inner_text()
            waiting = page.locator("#running .waiting .waits-for").evaluate_all("els => els.map(e => e.dataset.node)")
            check(waits.startswith("barrier: waiting for") and waiting == nodes,
                  f"the running event says who it waits for ({waits!r}: {waiting})")
            page.wait_for_selector('#timeline g.lane[data-node="n1"]', timeout=5000)
            page.screenshot(path=f"{artefacts}/web-view-running{suffix}.png", full_page=True)
            page.wait_for_selector('#history tr[data-event="1"][data-outcome="completed"]', timeout=10000)
            for node in nodes:
                page.wait_for_selector(f'#timeline g.bar.ok[data-segment="1"][data-node="{node}"]', timeout=5000)
            check(page.locator("#running").get_attribute("data-event") == "", "nothing runs once it completed")
            seen = page.evaluate("window.seen")

            db = sqlite3.connect(journal)
            started, finished = db.execute("SELECT started_at, finished_at FROM event WHERE id = 1").fetchone()
            db.close()
            # Dates are stored as seconds since 1970 (or since 2001, Foundation's reference date).
            offset = 978307200 if started < 1e9 else 0
            started, finished = started + offset, finished + offset
            shown_running = seen.get("running", 1e12) - started
            shown_completed = seen.get("completed", 1e12) - finished
            check(shown_running <= LIMIT, f"shown running {shown_running:.3f} s after the journal's start (<= {LIMIT})")
            check(shown_completed <= LIMIT,
                  f"shown completed {shown_completed:.3f} s after the journal's end (<= {LIMIT})")

            timeline = page.locator("#timeline")
            lanes = timeline.locator("g.lane").evaluate_all("els => els.map(e => e.dataset.node)")
            check(lanes == nodes, f"the timeline has one lane per node ({lanes})")
            bars = timeline.locator("g.bar[data-node]").evaluate_all(
                "els => els.map(e => [e.getAttribute('class'), e.dataset.node, e.dataset.segment, e.dataset.program])")
            expected = [["bar ok", n, segment, program] for n in nodes for segment, program in [("0", "sleep"), ("1", "touch")]]
            check(bars == expected,
                  f"a bar per command, coloured by outcome, labelled by program ({bars})")
            barriers = timeline.locator("g.barrier[data-segment]").evaluate_all("els => els.map(e => e.dataset.segment)")
            check(barriers == ["0"], f"the barrier after segment 0 is drawn ({barriers})")
            # ... across all the lanes: its line runs from above the first lane to the last one's bottom.
            line = timeline.locator('g.barrier[data-segment="0"] line').evaluate(
                "e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; }")
            rows = timeline.locator("g.lane > rect").evaluate_all(
                "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; })")
            check(len(rows) == len(nodes) and line[0] <= rows[0][0] and line[1] >= rows[-1][1] - 0.5,
                  f"the barrier line ({line[0]:.0f} to {line[1]:.0f}) crosses every lane ({rows})")
            history = page.locator('#history tr[data-event="1"]').inner_text()
            check("takeover" in history and "completed" in history, f"history row ({history!r})")
            check(outside == [], f"nothing is loaded from outside the service ({outside})")
            check(errors == [], f"no script error, no CSP violation ({errors})")
            # The admin chooses the event in the history: its timeline shows.
            page.locator('#history a[data-event="1"]').click()
            page.wait_for_selector('#timeline[data-event="1"] g.barrier', timeout=5000)
            page.screenshot(path=f"{artefacts}/web-view-completed{suffix}.png", full_page=True)
            page.locator("#timeline-panel").screenshot(path=f"{artefacts}/web-view-timeline{suffix}.png")
            print(f"screenshots: {artefacts}/web-view-running{suffix}.png, web-view-completed{suffix}.png, "
                  f"web-view-timeline{suffix}.png")
            browser.close()
    finally:
        for _, service in services:
            service.terminate()
        for node, service in services:
            try:
                service.wait(timeout=20)
            except subprocess.TimeoutExpired:
                service.kill()
            if failed:
                print(f"---- {node}'s engine:")
                print(open(f"{root}/{node}.log").read())
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # a broken step is a failure with its reason, not a traceback alone
        check(False, f"{type(error).__name__}: {error}")
    finish()
