// Drives the case officer's view (`tillsyn cases`) in a real headless
// Chromium (Debian's) through playwright-core, and checks what a case
// officer sees and does. Run by tests/ops/case_view/run.sh, which fills the
// case store first (tests/ops/case_view/produce_alerts.py `initial`) and
// passes, in the environment:
//   CASE_VIEW_URL    the view, e.g. http://127.0.0.1:9470
//   PLAYWRIGHT_CORE  the playwright-core package directory
//   AXE_CORE         axe-core's axe.min.js
//   CHROMIUM         the browser (default /usr/bin/chromium)
//   PRODUCE          a JSON array: the command that produces the `late`
//                    alerts while the pages are open
//   SHOTS            the directory for the screenshots
//   TRANSLATIONS     1 when the case store holds the alerts' explanations
//                    in both languages (`explanations`), else 0
// Prints one line per check ("ok - ..." or "FAILED - ..."); exits 1 if any
// failed.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { execFileSync } = require("child_process");

const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.env.CASE_VIEW_URL;
const shots = process.env.SHOTS;
const axeSource = fs.readFileSync(process.env.AXE_CORE, "utf8");
const produceLate = JSON.parse(process.env.PRODUCE);
// Whether the sink stored the alerts' translations (`explanations`).
const translations = process.env.TRANSLATIONS === "1";

// The scenario's open episodes, the most severe first, then the oldest.
const OPEN_ORDER = ["ep-a1", "ep-b2", "ep-c3", "ep-d4", "ep-e5", "ep-f6"];

let failures = 0;
let passes = 0;
function check(ok, what, detail) {
  if (ok) {
    passes += 1;
    console.log(`ok - ${what}`);
  } else {
    failures += 1;
    console.log(`FAILED - ${what}${detail === undefined ? "" : `: ${detail}`}`);
  }
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const squash = (s) => (s || "").replace(/\s+/g, " ").trim();

async function rows(page) {
  return page.$$eval("#episodes tbody tr", (trs) => trs.map((tr) => tr.dataset.episode));
}

async function text(page, selector) {
  const el = await page.$(selector);
  return el ? squash(await el.textContent()) : null;
}

// axe-core's WCAG 2.x A and AA rules on the page as it is.
async function axe(page, what) {
  const violations = await page.evaluate(
    async (source) => {
      if (!window.axe) {
        // eslint-disable-next-line no-eval
        (0, eval)(source);
      }
      const result = await window.axe.run(document, {
        runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] },
      });
      return result.violations.map((v) => `${v.id} (${v.nodes.length}): ${v.help}`);
    },
    axeSource
  );
  check(violations.length === 0, `${what}: no WCAG 2.2 A/AA violations (axe-core, colour contrast included)`,
    violations.join("; "));
}

// Does `action` and waits for the page at `pathname` (default /) with
// exactly the query `search` to have loaded.
async function go(page, action, search, pathname = "/") {
  await Promise.all([
    page.waitForURL((u) => u.pathname === pathname && u.search === search, { timeout: 15000 }),
    action(),
  ]);
}

// The focused element, described.
async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return "body";
    let d = el.tagName.toLowerCase();
    if (el.id) d += `#${el.id}`;
    if (el.getAttribute("href")) d += `[${el.getAttribute("href")}]`;
    return d;
  });
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "tillsyn-case-view-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1360, height: 860 },
    locale: "sv-SE",
    timezoneId: "Europe/Stockholm",
  });
  const consoleErrors = [];
  const watched = new WeakSet();
  function watch(p) {
    if (watched.has(p)) return;
    watched.add(p);
    p.on("console", (m) => {
      // The one 404 is the check of an unknown episode's page.
      const expected = p.url().endsWith("/episodes/no-such-episode") && m.text().includes("404");
      if (m.type() === "error" && !expected) consoleErrors.push(`${p.url()}: ${m.text()}`);
    });
    p.on("pageerror", (e) => consoleErrors.push(`${p.url()}: ${e.message}`));
  }
  context.on("page", watch);
  try {
    const page = context.pages()[0] || (await context.newPage());
    watch(page);

    // ---- The list, in Swedish by default.
    await page.goto(`${base}/`);
    check((await page.getAttribute("html", "lang")) === "sv", "the list is Swedish by default (<html lang=\"sv\">)");
    check((await text(page, "h1")) === "Öppna ärenden", "its heading is \"Öppna ärenden\"", await text(page, "h1"));
    const order = await rows(page);
    check(same(order, OPEN_ORDER), "the list shows the six open episodes, critical first, then high, medium, " +
      "low, each oldest first", order.join(", "));
    check(!order.includes("ep-g7"), "the resolved episode is not listed");
    check((await text(page, "#episodes caption")) === "6 öppna ärenden", "the table's caption counts them",
      await text(page, "#episodes caption"));
    const first = squash(await page.textContent("#episodes tbody tr:first-child"));
    check(first.includes("Kritisk") && first.includes("Eskalerad") && first.includes("412,5 timmar") &&
      first.includes("2026-02-03 08:00"),
      "the first row says Kritisk, Eskalerad, 412,5 timmar (decimal comma) and 2026-02-03 08:00 (Swedish time)",
      first);
    const headers = await page.$$eval("#episodes thead th", (ths) => ths.map((th) => th.getAttribute("scope")));
    check(headers.length === 10 && headers.every((s) => s === "col"), "every column header has scope=col");
    check((await page.$$("#episodes tbody th[scope=row] a")).length === 6, "every row has a row header linking " +
      "to its episode");
    const labels = await page.$$eval("select", (ss) => ss.map((s) => {
      const label = document.querySelector(`label[for="${s.id}"]`);
      return label ? label.textContent : null;
    }));
    check(same(labels, ["Kommun", "Regel"]), "each filter has its label (Kommun, Regel)", JSON.stringify(labels));
    await axe(page, "the list (sv)");

    // ---- The keyboard.
    await page.goto(`${base}/`);
    await page.keyboard.press("Tab");
    check((await focused(page)) === "a[#main]", "the first Tab reaches the skip link", await focused(page));
    await page.keyboard.press("Enter");
    check((await focused(page)) === "main#main", "the skip link moves the focus to the main content",
      await focused(page));
    await page.goto(`${base}/`);
    const sequence = [];
    for (let i = 0; i < 12; i += 1) {
      await page.keyboard.press("Tab");
      sequence.push(await focused(page));
      if (sequence[sequence.length - 1] === "select#municipality") {
        const ring = await page.evaluate(() => {
          const s = getComputedStyle(document.activeElement);
          return `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}`;
        });
        check(!ring.startsWith("none") && parseFloat(ring.split(" ")[1]) >= 2,
          "a focused control shows a visible focus ring", ring);
      }
    }
    const at = (d) => sequence.indexOf(d);
    const firstLink = sequence.findIndex((d) => d.startsWith("a[/episodes/"));
    check(at("select#municipality") >= 0 && at("select#municipality") < at("select#rule") &&
      at("select#rule") < at("button") && at("button") < firstLink,
      "Tab reaches the municipality filter, the rule filter, the button and then the episodes' links, in order",
      sequence.join(" → "));

    // ---- The filters, as a plain GET form.
    await page.selectOption("#municipality", "2480");
    await page.focus("button[type=submit]");
    await go(page, () => page.keyboard.press("Enter"), "?municipality=2480&rule=");
    check(same(await rows(page), ["ep-a1", "ep-c3", "ep-f6"]), "the municipality filter (2480, submitted " +
      "with the keyboard) shows only Umeå's open episodes, in order", (await rows(page)).join(", "));
    await page.selectOption("#rule", "phantom-clients");
    await go(page, () => page.click("button[type=submit]"), "?municipality=2480&rule=phantom-clients");
    check(same(await rows(page), ["ep-c3"]), "municipality and rule together narrow to one episode",
      (await rows(page)).join(", "));
    await page.selectOption("#municipality", "0180");
    await go(page, () => page.click("button[type=submit]"), "?municipality=0180&rule=phantom-clients");
    check((await text(page, "#live-content")) === "Inga öppna ärenden motsvarar urvalet." &&
      (await rows(page)).length === 0, "a filter nothing matches says so", await text(page, "#live-content"));
    await page.selectOption("#municipality", "");
    await go(page, () => page.click("button[type=submit]"), "?municipality=&rule=phantom-clients");
    check(same(await rows(page), ["ep-c3"]), "the rule filter alone", (await rows(page)).join(", "));
    await go(page, () => page.click("text=Rensa filter"), "");
    check(same(await rows(page), OPEN_ORDER), "\"Rensa filter\" shows every open episode again");

    fs.mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, "case-view.png"), fullPage: true });
    check(true, `screenshot of the list: ${path.join(shots, "case-view.png")}`);

    // ---- An episode's page.
    await go(page, () => page.click('#episodes a[href="/episodes/ep-a1"]'), "", "/episodes/ep-a1");
    check((await text(page, "h1")) === "Fakturerade timmar över utförda timmar",
      "the episode page is headed by the rule's Swedish name", await text(page, "h1"));
    check((await text(page, "#episode-status")) === "Eskalerad", "it shows the status (Eskalerad)");
    check((await text(page, "#observed")) === "412,5 timmar" && (await text(page, "#expected")) === "320 timmar",
      "it shows observed 412,5 timmar against expected 320 timmar",
      `${await text(page, "#observed")} / ${await text(page, "#expected")}`);
    check((await text(page, ".explanation")).startsWith("Faktura inv-000498 debiterar 412,5 timmar"),
      "it shows the latest alert's explanation, in Swedish", await text(page, ".explanation"));
    const history = await page.$$eval("#history tbody tr", (trs) =>
      trs.map((tr) => Array.from(tr.children).map((c) => c.textContent.replace(/\s+/g, " ").trim())));
    check(history.length === 2 && history[0][0] === "0" && history[0][1] === "Öppnad" && history[0][2] === "Hög" &&
      history[1][0] === "1" && history[1][1] === "Eskalerad" && history[1][2] === "Kritisk" &&
      history[1][3] === "2026-03-03 08:00" && history[1][7] === "2" && history[1][9] === "ep-a1-r1",
      "the alert history lists both alerts by revision with status, severity, detection time and configuration " +
      "version", JSON.stringify(history));
    const evidence = await page.$$eval("#evidence li", (lis) => lis.map((li) => li.textContent.trim()));
    check(same(evidence, ["inv-000498", "tr-000201", "tr-000202", "tr-000203"]),
      "it lists the evidence ids of the latest alert", evidence.join(", "));
    await axe(page, "the episode page (sv)");
    await page.screenshot({ path: path.join(shots, "case-view-episode.png"), fullPage: true });
    check(true, `screenshot of an episode: ${path.join(shots, "case-view-episode.png")}`);

    // ---- English, by the visible switch.
    await go(page, () => page.click("nav.language a"), "?lang=en", "/episodes/ep-a1");
    check((await page.getAttribute("html", "lang")) === "en" &&
      (await text(page, "h1")) === "Invoiced hours above performed hours" &&
      (await text(page, "#episode-status")) === "Escalated" && (await text(page, "#observed")) === "412.5 hours",
      "the language switch shows the episode in English (lang=\"en\", Escalated, 412.5 hours)",
      `${await text(page, "h1")} / ${await text(page, "#observed")}`);
    const english = await text(page, ".explanation");
    if (translations) {
      check(english.startsWith("Invoice inv-000498 bills 412.5 hours"),
        "the English page shows the alert's English explanation (from `explanations`)", english);
    } else {
      console.log("note - the case store holds no translations (its explanations column is empty): the English " +
        "page shows the alert's `explanation`, in Swedish");
    }
    check((await text(page, "#history-heading")) === "Alert history" &&
      (await text(page, "#evidence-heading")) === "Evidence (event ids)", "English headings");
    await go(page, () => page.click(".breadcrumb a"), "?lang=en");
    check((await text(page, "h1")) === "Open cases" && same(await rows(page), OPEN_ORDER),
      "the way back to the list stays in English", await text(page, "h1"));
    await page.selectOption("#rule", "night-visits-private-provider");
    await go(page, () => page.click("button[type=submit]"),
      "?municipality=&rule=night-visits-private-provider&lang=en");
    check(page.url().includes("lang=en") && same(await rows(page), ["ep-d4"]) &&
      (await text(page, "label[for=rule]")) === "Rule", "the filter form keeps English", page.url());
    await axe(page, "the list (en)");
    await go(page, () => page.click("nav.language a"), "?rule=night-visits-private-provider");
    check((await page.getAttribute("html", "lang")) === "sv" && !page.url().includes("lang=en") &&
      same(await rows(page), ["ep-d4"]), "switching back to Swedish keeps the filter", page.url());

    const missing = await page.goto(`${base}/episodes/no-such-episode`);
    check(missing.status() === 404 && (await text(page, "h1")) === "Ärendet finns inte",
      "an unknown episode is a 404 page in Swedish", `${missing.status()} ${await text(page, "h1")}`);

    // ---- Live: a new alert appears without a reload.
    const list = page;
    await list.goto(`${base}/`);
    const episodePage = await context.newPage();
    await episodePage.goto(`${base}/episodes/ep-a1`);
    for (const p of [list, episodePage]) {
      await p.evaluate(() => {
        window.__notReloaded = true;
      });
      await p.waitForFunction(() => document.documentElement.dataset.live === "connected", null, { timeout: 15000 });
    }
    check(true, "both pages hold an open event stream (/events)");
    // A reader on the list with the keyboard: the focus stays where it is.
    await list.focus('#episodes a[href="/episodes/ep-b2"]');
    const started = Date.now();
    execFileSync(produceLate[0], produceLate.slice(1), { stdio: ["ignore", "ignore", "inherit"] });
    let appeared = true;
    try {
      await list.waitForFunction(
        () => document.querySelector("#episodes tbody tr")?.dataset.episode === "ep-h8", null, { timeout: 30000 });
    } catch (e) {
      appeared = false;
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    check(appeared && (await list.evaluate(() => window.__notReloaded === true)),
      `a new critical episode stored while the list is open appears first, without a reload (${seconds} s ` +
      "after it was produced)", (await rows(list)).join(", "));
    check(same(await rows(list), ["ep-h8", ...OPEN_ORDER]), "and the rest keep their order",
      (await rows(list)).join(", "));
    check((await focused(list)) === "a[/episodes/ep-b2]", "the keyboard focus stays on its link across the update",
      await focused(list));
    const announced = await text(list, "#live-status");
    // (Without a count when the view had to re-read the store, e.g. after
    // the database was restarted meanwhile.)
    check(/^Uppdaterad \d\d:\d\d:\d\d(: (1 nytt larm|\d+ nya larm) har lagrats)?\.$/.test(announced),
      "the update is announced in the live region (role=status)", announced);
    let grew = true;
    try {
      await episodePage.waitForFunction(() => document.querySelectorAll("#history tbody tr").length === 3, null,
        { timeout: 30000 });
    } catch (e) {
      grew = false;
    }
    check(grew && (await episodePage.evaluate(() => window.__notReloaded === true)) &&
      (await text(episodePage, "#observed")) === "440 timmar",
      "the open episode page shows the new alert (history of 3, observed 440 timmar) without a reload",
      `${await text(episodePage, "#observed")}`);

    check(consoleErrors.length === 0, "no errors in the browser's console (scripts, content security policy)",
      consoleErrors.join(" | "));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main()
  .catch((e) => {
    failures += 1;
    console.log(`FAILED - the browser run stopped: ${e && e.stack ? e.stack : e}`);
  })
  .then(() => {
    console.log(`${passes} passed, ${failures} failed`);
    process.exit(failures === 0 ? 0 : 1);
  });
