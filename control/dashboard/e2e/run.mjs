// The dashboard end to end, in Debian's chromium driven by playwright-core (no browser is
// downloaded): a real `freya dev`, the seeded admin signs in, edits and creates agents in the
// form, builds a workflow in the editor (a problem shown on the field of the node's form), moves
// a node and finds it there again, publishes two versions and reads their diff, gives a number
// to the workflow in regions and then to an agent, places a real
// call with `freya call`, finds it in Calls with its transcript, latency and recording, hangs
// up a live call from its page, redelivers a webhook delivery its endpoint refused, switches
// workspace, adds a member, changes their role and removes them,
// creates and revokes an API key, tests a SIP trunk (a scripted one answering OPTIONS) from
// the Providers page and sees the result and the health badge; a real viewer signs in with the
// keyboard alone and finds no edit control on any page, and a real editor demoted while editing
// is refused with the reason; a token near its expiry is refreshed. Every page passes axe-core with no serious or critical
// violation and leaves no error in the console.
//
//   node e2e/run.mjs                 # FREYA_BIN or the debug build of the workspace
//   SCREENSHOTS=screenshots node e2e/run.mjs  # also writes the README's screenshots there
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { AxeBuilder } from "@axe-core/playwright";
import { startFreyaDev, freyaCall, createUser } from "./freya.mjs";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const shots = process.env.SCREENSHOTS;

const steps = [];
function step(name, fn) {
  steps.push({ name, fn });
}

const freya = await startFreyaDev();
const { dev } = freya;
const base = dev.api_url;
const profile = mkdtempSync(join(tmpdir(), "freya-dashboard-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ARGS,
  viewport: { width: 1280, height: 860 },
  colorScheme: "light",
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(20_000);

// Console errors: every one fails the test except the 401 and the 422 this test provokes on
// purpose (a wrong password, an invalid agent).
const consoleErrors = [];
let expected422 = 0;
let expected401 = 0;
let expected403 = 0;
page.on("console", (msg) => {
  if (msg.type() !== "error") return;
  if (expected422 > 0 && /status of 422/.test(msg.text())) {
    expected422--;
    return;
  }
  if (expected403 > 0 && /status of 403/.test(msg.text())) {
    expected403--;
    return;
  }
  if (expected401 > 0 && /status of 401/.test(msg.text())) {
    expected401--;
    return;
  }
  consoleErrors.push(msg.text());
});
page.on("pageerror", (err) => consoleErrors.push(`page error: ${err.message}`));
page.on("dialog", (d) => void d.accept());

const checked = [];
async function axe(name) {
  await page.waitForLoadState("networkidle");
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`),
    [],
    `axe on ${name}`,
  );
  checked.push(name);
}

async function shot(name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `dashboard-${name}.png`) });
}

const nav = (name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
let callId = null;

step("the dashboard and its client-side routes are served with their cache rules", async () => {
  const index = await fetch(`${base}/`);
  assert.equal(index.status, 200);
  assert.equal(index.headers.get("cache-control"), "no-cache");
  assert.match(index.headers.get("content-security-policy") ?? "", /script-src 'self'/);
  const html = await index.text();
  const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  assert.ok(asset, "index.html names its script");
  const js = await fetch(`${base}${asset}`);
  assert.equal(js.status, 200);
  assert.equal(js.headers.get("cache-control"), "public, max-age=31536000, immutable");
  assert.match(js.headers.get("content-type") ?? "", /javascript/);
  const route = await fetch(`${base}/calls/some-call`, { headers: { accept: "text/html" } });
  assert.equal(route.status, 200, "a browser's route gets index.html");
  assert.equal(await route.text(), html);
  const api = await fetch(`${base}/v1/nothing`, { headers: { accept: "text/html" } });
  assert.equal(api.status, 404, "an API path never falls back to the page");
  const missing = await fetch(`${base}/assets/missing.js`, { headers: { accept: "text/html" } });
  assert.equal(missing.status, 404, "a missing file is not the page");
});

step("sign in as the seeded admin", async () => {
  await page.goto(`${base}/`);
  await axe("sign in");
  await page.getByLabel("Email").fill(dev.admin_email);
  await page.getByLabel("Password").fill("not the password");
  expected401 = 1;
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "Wrong email or password" }).waitFor();
  await page.getByLabel("Password").fill(dev.admin_password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  for (const name of ["Calls", "Agents", "Workflows", "Numbers", "Analytics", "Edges", "API keys"]) {
    await nav(name).waitFor();
  }
  await axe("overview");
});

step("the demo agent is edited in the form to record its calls", async () => {
  await nav("Agents").click();
  await page.getByRole("link", { name: "Demo agent" }).click();
  await page.getByLabel("Name", { exact: true }).waitFor();
  assert.equal(await page.getByLabel("Name", { exact: true }).inputValue(), "Demo agent");
  // The stored tool secret is never shown.
  assert.equal(await page.getByLabel("Tool secret").inputValue(), "");
  await page.getByLabel("Record calls").check();
  await page.getByRole("button", { name: "Save agent" }).click();
  await page.getByRole("button", { name: "Save agent" }).and(page.locator(":enabled")).waitFor();
  // What the form saved, read back through the API with the seeded key.
  const answer = await fetch(`${base}/v1/agents/${dev.agent_id}`, { headers: { authorization: `Bearer ${dev.api_key}` } }).then((r) => r.json());
  assert.equal(answer.record, true, "the agent now records");
  assert.equal(answer.tool_secret, "********", "the stored tool secret was kept");
  assert.ok(answer.rules?.rules?.length > 0, "the rules survived the round trip");
  await page.getByRole("heading", { name: "Test call" }).waitFor();
  await page.getByText(`freya call sip:${dev.phone_number}@`).waitFor();
  await axe("agent editor");
});

step("an agent is created in the form; the API's error lands on the field it names", async () => {
  await nav("Agents").click();
  await page.getByRole("link", { name: "New agent" }).click();
  await page.getByLabel("Name", { exact: true }).fill("Support line");
  await page.getByLabel("System prompt", { exact: true }).fill("You help {{caller_number}} with {{topic}}.");
  await page.getByLabel("Variables", { exact: true }).fill("topic=billing");
  await page.getByLabel("First message", { exact: true }).fill("Hello, this is support.");
  const llm = page.getByRole("group", { name: "Language model", exact: true });
  await llm.getByLabel("Provider").fill("nope");
  await llm.getByLabel("API key").fill("sk-secret-value");
  expected422 = 1;
  await page.getByRole("button", { name: "Create agent" }).click();
  const message = page.locator("#field-llm\\.provider-error");
  await message.waitFor();
  assert.match(await message.innerText(), /must be one of/);
  assert.equal(await llm.getByLabel("Provider").getAttribute("aria-invalid"), "true");
  await llm.getByLabel("Provider").fill("rules");
  await llm.getByLabel("API key").fill("");
  await page.getByRole("button", { name: "Create agent" }).click();
  await page.getByRole("heading", { name: "Agent Support line" }).waitFor();
  await nav("Agents").click();
  await page.getByRole("link", { name: "Support line" }).waitFor();
  await shot("agents");
  await axe("agents");
});

const apiGet = (path) => fetch(`${base}${path}`, { headers: { authorization: `Bearer ${dev.api_key}` } }).then((r) => r.json());
/** Where xyflow draws a node: the translate of its wrapper, in the flow's coordinates. */
async function drawnAt(graph, id) {
  const transform = await graph.locator(`.react-flow__node[data-id="${id}"]`).evaluate((el) => el.style.transform);
  const m = /translate\(([-\d.]+)px, ?([-\d.]+)px\)/.exec(transform);
  assert.ok(m, `node ${id} is placed: ${transform}`);
  return { x: Number(m[1]), y: Number(m[2]) };
}
let workflowId = null;

step("a small workflow is built with the node forms, a problem shown on its field, and published", async () => {
  await nav("Workflows").click();
  await page.getByRole("link", { name: "New workflow" }).click();
  const graph = page.getByRole("region", { name: "Workflow graph" });
  await graph.locator('[data-node="hello"]').waitFor();
  await page.getByLabel("Workflow name").fill("Greeter");
  await page.getByLabel("New node type").selectOption("end");
  await page.getByRole("button", { name: "Add node" }).click();
  await graph.locator('[data-node="end3"]').waitFor();
  // A gather node saving to a name that is no variable name: the API names the field, and the
  // node's form shows the message under that field (and the node on the graph is marked).
  await page.getByLabel("New node type").selectOption("gather");
  await page.getByRole("button", { name: "Add node" }).click();
  const form = page.getByRole("form", { name: "Node gather4" });
  await form.getByLabel("Save as").fill("1st answer");
  expected422 += 1;
  await page.getByRole("button", { name: "Validate" }).click();
  const fieldError = form.locator("#node-save_as-error");
  await fieldError.waitFor();
  assert.match(await fieldError.innerText(), /not a variable name/);
  assert.equal(await form.getByLabel("Save as").getAttribute("aria-invalid"), "true");
  await graph.locator('[data-node="gather4"]').getByRole("alert").first().waitFor();
  await axe("workflow editor (a problem on a field)");
  await form.getByRole("button", { name: "Remove node" }).click();
  // The greeting now leads to the new end node; `bye` is out of reach, which the API refuses: it goes.
  await graph.locator('[data-node="hello"]').click();
  const hello = page.getByRole("form", { name: "Node hello" });
  await hello.getByLabel("Next", { exact: true }).selectOption("end3");
  await graph.locator('[data-node="bye"]').click();
  await page.getByRole("form", { name: "Node bye" }).getByRole("button", { name: "Remove node" }).click();
  await page.getByRole("button", { name: "Validate" }).click();
  await page.getByText("The workflow is valid.").waitFor();
  await page.getByRole("button", { name: "Create workflow" }).click();
  await page.getByRole("heading", { name: "Workflow Greeter" }).waitFor();
  workflowId = page.url().split("/").pop();
  await page.getByRole("button", { name: "Publish" }).click();
  await page.getByText("Published as version 1.").waitFor();
  await graph.locator('[data-node="hello"]').click();
  await page.getByRole("form", { name: "Node hello" }).waitFor();
  await shot("workflow");
  await axe("workflow editor");
  await nav("Workflows").click();
  await page.getByText("latest version 1").waitFor();
});

step("a node moved on the canvas is saved there and drawn there again", async () => {
  await page.getByRole("link", { name: "Greeter" }).click();
  const graph = page.getByRole("region", { name: "Workflow graph" });
  await graph.locator('[data-node="hello"]').waitFor();
  const stored = await apiGet(`/v1/workflows/${workflowId}`);
  assert.ok(stored.nodes.every((n) => n.position && typeof n.position.x === "number"), "every node was saved with its place");
  const before = stored.nodes.find((n) => n.id === "hello").position;
  const box = await graph.locator('[data-node="hello"]').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + 8);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2, box.y + 90, { steps: 8 });
  await page.mouse.up();
  await page.getByRole("button", { name: "Save draft" }).click();
  await page.getByText("Draft saved.").waitFor();
  const after = (await apiGet(`/v1/workflows/${workflowId}`)).nodes.find((n) => n.id === "hello").position;
  assert.ok(after.y > before.y, `hello moved down: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  await page.reload();
  await graph.locator('[data-node="hello"]').waitFor();
  assert.deepEqual(await drawnAt(graph, "hello"), after, "drawn where it was saved");
});

step("a second version is published and its diff with the first reads field by field", async () => {
  const graph = page.getByRole("region", { name: "Workflow graph" });
  await graph.locator('[data-node="hello"]').click();
  await page.getByRole("form", { name: "Node hello" }).getByLabel("Text").fill("Hello again, {{caller_number}}!");
  // A new node between the greeting and the end.
  await page.getByLabel("New node type").selectOption("say");
  await page.getByRole("button", { name: "Add node" }).click();
  await page.getByRole("form", { name: "Node say3" }).getByLabel("Next", { exact: true }).selectOption("end3");
  await graph.locator('[data-node="hello"]').click();
  await page.getByRole("form", { name: "Node hello" }).getByLabel("Next", { exact: true }).selectOption("say3");
  await page.getByRole("button", { name: "Save draft" }).click();
  await page.getByText("Draft saved.").waitFor();
  await page.getByRole("button", { name: "Publish" }).click();
  await page.getByText("Published as version 2.").waitFor();
  await nav("Workflows").click();
  await page.getByText("latest version 2").waitFor();
  await page.getByRole("button", { name: "History" }).click();
  const diff = page.getByRole("region", { name: "Changes from version 1 to version 2" });
  const cells = async (region, field) =>
    region.getByRole("row").filter({ has: page.getByRole("cell", { name: field, exact: true }) }).getByRole("cell").allInnerTexts();
  await diff.getByRole("table").waitFor();
  assert.deepEqual(await cells(diff, "text"), ["hello", "text", "Hello!", "Hello again, {{caller_number}}!"]);
  assert.deepEqual(await cells(diff, "next"), ["hello", "next", "end3", "say3"]);
  // The node moved between the versions, which is no change; the new node is listed, not diffed.
  assert.equal(await diff.getByRole("row").count(), 3, "a header and two changed fields");
  assert.equal(await diff.getByText("position").count(), 0);
  await diff.getByText("+ say3 (say)").waitFor();
  await diff.getByText("− hello —next→ end3").waitFor();
  await diff.getByText("+ hello —next→ say3").waitFor();
  await diff.getByText("+ say3 —next→ end3").waitFor();
  await shot("workflow-diff");
  await axe("workflow version diff");
  // The other way round reads as its mirror image.
  // (The section is named after the pair shown, so it is found by the start of its name.)
  const pair = page.getByRole("region", { name: /^Changes from version/ });
  await pair.getByLabel("Compare version").selectOption("2");
  await pair.getByLabel("with version").selectOption("1");
  const back = page.getByRole("region", { name: "Changes from version 2 to version 1" });
  assert.deepEqual(await cells(back, "text"), ["hello", "text", "Hello again, {{caller_number}}!", "Hello!"]);
  await back.getByText("− say3 (say)").waitFor();
});

step("a number is added in the form for the workflow in a region, moved to an agent, and deleted", async () => {
  await nav("Numbers").click();
  await page.getByRole("button", { name: "New number" }).click();
  const form = page.getByRole("form", { name: "New number" });
  await form.getByLabel("Number").fill("+15550007777");
  await form.getByLabel("Answered by").selectOption({ label: "Workflow: Greeter" });
  await form.getByLabel("Home region").fill("local");
  await form.getByLabel("Further regions").fill("eu-west, us-east");
  await form.getByRole("button", { name: "Add number" }).click();
  const row = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "+15550007777", exact: true }) });
  await row.getByRole("cell", { name: "Workflow: Greeter" }).waitFor();
  await row.getByRole("cell", { name: "local, eu-west, us-east" }).waitFor();
  const stored = (await apiGet("/v1/phone-numbers?limit=500")).data.find((n) => n.number === "+15550007777");
  assert.equal(stored.workflow_id, workflowId);
  assert.deepEqual([stored.region, stored.regions], ["local", ["eu-west", "us-east"]]);
  await axe("numbers (added)");
  await row.getByRole("button", { name: "Edit +15550007777" }).click();
  const edit = page.getByRole("form", { name: "Edit number" });
  await edit.getByLabel("Answered by").selectOption({ label: "Agent: Support line" });
  await edit.getByRole("button", { name: "Save number" }).click();
  await row.getByRole("cell", { name: "Agent: Support line" }).waitFor();
  await row.getByRole("button", { name: "Delete +15550007777" }).click();
  await page.getByRole("cell", { name: "+15550007777", exact: true }).waitFor({ state: "detached" });
  assert.equal((await apiGet("/v1/phone-numbers?limit=500")).data.some((n) => n.number === "+15550007777"), false);
});

// A customer's webhook endpoint: it fails (500) until told to accept.
const hookServer = { accept: false, received: 0 };
const hookHttp = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    hookServer.received++;
    res.writeHead(hookServer.accept ? 200 : 500).end();
  });
});
await new Promise((ok) => hookHttp.listen(0, "127.0.0.1", ok));
hookHttp.unref();

step("a webhook subscription is made for the calls to come", async () => {
  const made = await fetch(`${base}/v1/webhooks`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${dev.api_key}` },
    body: JSON.stringify({ url: `http://127.0.0.1:${hookHttp.address().port}/hook`, events: ["call.ended"], secret: "an e2e webhook secret" }),
  });
  assert.equal(made.status, 201, await made.clone().text());
});

step("a real call with freya call appears in Calls with its transcript, latency and recording", async () => {
  const out = await freyaCall(`sip:${dev.phone_number}@${dev.sip_addr}`, ["Hello, what are your opening hours?", "Thank you, goodbye"]);
  assert.match(out, /the agent answered/, out);
  await nav("Calls").click();
  const row = page.getByRole("row").filter({ hasText: "Demo agent" }).first();
  await row.waitFor({ timeout: 30_000 });
  await row.getByText(/\d+ ms/).waitFor({ timeout: 30_000 });
  await shot("calls");
  await axe("calls");
  await row.getByRole("link").click();
  // Both sides are in the chat. Their words are not checked: what the recogniser heard, and
  // where a slow machine lets the caller cut in, vary.
  const lines = page.getByRole("list", { name: "Transcript" }).getByRole("listitem");
  await lines.filter({ hasText: /^Agent · / }).first().waitFor();
  await lines.filter({ hasText: /^Caller · / }).first().waitFor();
  await page.getByRole("cell", { name: /^\d+ ms$/ }).first().waitFor();
  callId = page.url().split("/").pop();
  // The recording is uploaded after the call; the page keeps looking until it is there.
  await page.getByRole("button", { name: "Play" }).waitFor({ timeout: 60_000 });
  await page.locator('[data-ready="true"]').waitFor({ timeout: 30_000 });
  // A line of the transcript moves the recording to where that line starts.
  const line = page.getByRole("list", { name: "Transcript" }).getByRole("button").nth(1);
  const startsAt = Number(/· ([\d.]+) s/.exec(await line.innerText())?.[1]);
  assert.ok(startsAt > 0, "the second line has a start time");
  await line.click();
  const wave = page.locator('[data-ready="true"]');
  await page.waitForFunction(
    ([el, at]) => Math.abs(Number(el.getAttribute("data-position")) - at) < 1.5,
    [await wave.elementHandle(), startsAt],
  );
  if ((await page.getByRole("button", { name: "Pause" }).count()) > 0) await page.getByRole("button", { name: "Pause" }).click();
  await shot("call");
  await axe("call");
});

step("a live call is hung up from its page", async () => {
  // The caller stays on the line two minutes after its turn: only our hang-up ends it sooner.
  const caller = freyaCall(`sip:${dev.phone_number}@${dev.sip_addr}`, ["Hello"], ["--linger-seconds", "120"]);
  caller.catch(() => {});
  await nav("Calls").click();
  const row = page.getByRole("row").filter({ hasText: "in_progress" }).first();
  await row.waitFor({ timeout: 60_000 });
  await row.getByRole("link").click();
  const id = page.url().split("/").pop();
  await page.getByRole("button", { name: "Hang up" }).click();
  await page.getByRole("status").filter({ hasText: "The edge was told to hang up." }).waitFor();
  // The page follows the call until it has ended, with the reason.
  await page.getByText("hangup_requested", { exact: true }).waitFor({ timeout: 30_000 });
  assert.equal(await page.getByRole("button", { name: "Hang up" }).count(), 0, "an ended call has no Hang up");
  const out = await caller;
  assert.match(out, /the agent hung up/, out);
  const call = await apiGet(`/v1/calls/${id}`);
  assert.equal(call.status, "ended");
  assert.equal(call.end_reason, "hangup_requested");
  await axe("call hung up");
});

step("a failed webhook delivery shows its response and is redelivered", async () => {
  await nav("Webhooks").click();
  await page.getByRole("button", { name: "Deliveries" }).click();
  const failed = page.getByRole("row").filter({ hasText: "call.ended" }).filter({ has: page.getByRole("cell", { name: "500", exact: true }) }).first();
  await failed.waitFor({ timeout: 60_000 });
  await axe("webhook deliveries");
  const before = hookServer.received;
  hookServer.accept = true;
  await failed.getByRole("button", { name: "Redeliver" }).click();
  const delivered = page
    .getByRole("row")
    .filter({ hasText: "delivered" })
    .filter({ has: page.getByRole("cell", { name: "200", exact: true }) })
    .first();
  await delivered.waitFor({ timeout: 60_000 });
  assert.ok(hookServer.received > before, "the endpoint was called again");
  hookHttp.close();
});

step("the workspace switcher shows another workspace's data, and back", async () => {
  const login = await fetch(`${base}/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: dev.admin_email, password: dev.admin_password }),
  }).then((r) => r.json());
  const created = await fetch(`${base}/v1/workspaces`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${login.token}` },
    body: JSON.stringify({ name: "Second shop" }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  await page.reload();
  await nav("Agents").click();
  await page.getByRole("link", { name: "Demo agent" }).waitFor();
  await page.getByLabel("Workspace").selectOption({ label: "Second shop" });
  await page.getByText("No agents").waitFor();
  assert.equal(await page.getByRole("link", { name: "Demo agent" }).count(), 0, "the other workspace's agents are gone");
  await nav("Calls").click();
  await page.getByText("No calls match.").waitFor();
  await axe("another workspace");
  await page.getByLabel("Workspace").selectOption({ label: "Demo" });
  await nav("Agents").click();
  await page.getByRole("link", { name: "Demo agent" }).waitFor();
});

step("a member is added, their role changed, and removed", async () => {
  await createUser(freya.dir, "teammate@example.com", "Teammate", "a long enough password");
  await nav("Members").click();
  await page.getByLabel("Member email").fill("teammate@example.com");
  await page.getByLabel("Member role").selectOption("editor");
  await page.getByRole("button", { name: "Add member" }).click();
  const role = page.getByLabel("Role of teammate@example.com");
  await role.waitFor();
  assert.equal(await role.inputValue(), "editor");
  await role.selectOption("admin");
  const members = async () => (await apiGet(`/v1/workspaces/${dev.workspace_id}/members`)).data;
  for (let i = 0; i < 50 && (await members()).find((m) => m.email === "teammate@example.com")?.role !== "admin"; i++) {
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal((await members()).find((m) => m.email === "teammate@example.com")?.role, "admin");
  await page.reload();
  assert.equal(await page.getByLabel("Role of teammate@example.com").inputValue(), "admin");
  await axe("members");
  await page.getByRole("button", { name: "Remove teammate@example.com" }).click();
  await page.getByRole("cell", { name: "teammate@example.com", exact: true }).waitFor({ state: "detached" });
  assert.equal((await members()).some((m) => m.email === "teammate@example.com"), false, "removed");
});

step("an API key is created, shown once, works, and is revoked", async () => {
  await nav("API keys").click();
  await page.getByLabel("Key name").fill("e2e key");
  await page.getByLabel("Key role").selectOption("viewer");
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = await page.getByRole("dialog").getByLabel("Secret").inputValue();
  assert.match(secret, /^fk_/);
  await axe("API key dialog");
  await page.getByRole("button", { name: "Done" }).click();
  const allowed = await fetch(`${base}/v1/calls`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(allowed.status, 200, "the new key works");
  const row = page.getByRole("row").filter({ hasText: "e2e key" });
  assert.equal(await row.getByText(secret).count(), 0, "the secret is not listed");
  await row.getByRole("button", { name: "Revoke e2e key" }).click();
  await row.getByText("revoked").waitFor();
  const refused = await fetch(`${base}/v1/calls`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(refused.status, 401, "a revoked key is refused");
  await shot("keys");
  await axe("API keys");
});

step("a SIP trunk is tested from its row: the result, its latency and the health badge show", async () => {
  // A scripted trunk: every OPTIONS is answered 200 with its own Call-ID.
  const trunk = createSocket("udp4");
  trunk.on("message", (msg, from) => {
    const callId = /^Call-ID:\s*(.+)$/im.exec(msg.toString())?.[1]?.trim();
    if (!callId) return;
    trunk.send(`SIP/2.0 200 OK\r\nCall-ID: ${callId}\r\nContent-Length: 0\r\n\r\n`, from.port, from.address);
  });
  await new Promise((resolve) => trunk.bind(0, "127.0.0.1", resolve));
  try {
    const made = await fetch(`${base}/v1/providers`, {
      method: "POST",
      headers: { authorization: `Bearer ${dev.api_key}`, "content-type": "application/json" },
      body: JSON.stringify({ kind: "sip_trunk", name: "e2e trunk", host: "127.0.0.1", port: trunk.address().port, priority: 99 }),
    });
    assert.equal(made.status, 201, await made.text());
    await nav("Providers").click();
    const row = page.getByRole("row").filter({ hasText: "e2e trunk" });
    await row.getByRole("button", { name: "Test e2e trunk" }).click();
    const result = row.getByTestId("test-result");
    await result.getByText("ok", { exact: true }).waitFor();
    assert.match(await result.innerText(), /\d+ ms/);
    assert.match(await result.innerText(), /OPTIONS answered 200/);
    await row.getByTestId("health").getByText("up", { exact: true }).waitFor();
    await row.getByTestId("health").getByText(/tested .*: ok/).waitFor();
    await axe("providers (tested)");
  } finally {
    trunk.close();
  }
});

step("every other page passes axe, in light and dark", async () => {
  for (const [name, heading] of [
    ["Workflows", "Workflows"],
    ["Numbers", "Numbers"],
    ["Analytics", "Analytics"],
    ["Edges", "Edges"],
    ["Members", "Members"],
    ["Audit log", "Audit log"],
    ["Webhooks", "Webhooks"],
    ["Providers", "Providers"],
    ["Overview", "Overview"],
  ]) {
    await nav(name).click();
    await page.getByRole("heading", { name: heading, exact: true }).waitFor();
    if (name === "Analytics") {
      await page.getByRole("figure").first().waitFor();
      // The demo agent answers with the offline `rules` replier: its minutes show under it.
      const perProvider = page.getByRole("table", { name: "Minutes per provider" });
      const rules = perProvider.getByRole("row").filter({ has: page.getByRole("cell", { name: "rules", exact: true }) });
      await rules.getByRole("cell", { name: "Language model" }).waitFor();
      assert.ok(Number((await rules.getByRole("cell").nth(2).innerText()).trim()) >= 1, "the calls' minutes are counted");
      await shot("analytics");
      // Days chosen by date: yesterday and today hold the same calls (whenever the test runs).
      const today = new Date().toLocaleDateString("en-CA");
      const yesterday = new Date(Date.now() - 86_400_000).toLocaleDateString("en-CA");
      await page.getByLabel("First day").fill(yesterday);
      await page.getByLabel("Last day").fill(today);
      await page.getByRole("button", { name: "Show these days" }).click();
      await page.getByText(`From ${yesterday} to ${today}, both included.`).waitFor();
      await perProvider.getByRole("cell", { name: "rules", exact: true }).waitFor();
      assert.equal(await page.getByRole("button", { name: "7d", pressed: true }).count(), 0, "no preset is chosen");
    }
    if (name === "Overview") await shot("overview");
    if (name === "Audit log") {
      // The admin's own edits of agents, found by the API's filters, the actor named by email.
      await page.getByLabel("Action starts with").fill("agent.updated");
      await page.getByRole("option", { name: dev.admin_email }).waitFor({ state: "attached" });
      await page.getByLabel("Actor").selectOption({ label: dev.admin_email });
      await page.getByRole("button", { name: "Filter" }).click();
      const rows = page.getByRole("row").filter({ has: page.getByRole("cell", { name: "agent.updated", exact: true }) });
      await rows.first().waitFor();
      const body = page.locator("tbody tr");
      assert.equal(await body.count(), await rows.count(), "only agent.updated entries");
      assert.deepEqual([...new Set(await body.locator("td:nth-child(2)").allInnerTexts())], [dev.admin_email]);
      await page.getByLabel("Action starts with").fill("no.such.action");
      await page.getByRole("button", { name: "Filter" }).click();
      await page.getByText("No entry matches.").waitFor();
    }
    await axe(name);
  }
  await page.getByRole("button", { name: "Dark theme" }).click();
  assert.ok(await page.evaluate(() => document.documentElement.classList.contains("dark")));
  await axe("overview (dark)");
  await page.goto(`${base}/calls/${callId}`);
  await page.getByRole("list", { name: "Transcript" }).waitFor();
  await shot("call-dark");
  await axe("call (dark)");
  await page.getByRole("button", { name: "Light theme" }).click();
});

/** Signs out whoever is signed in and signs `email` in with the mouse. */
async function signInAs(email, password, role) {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(`Your role: ${role}`).waitFor();
}

/** Presses Tab until the focused element's accessible text is `text` (at most 60 times). */
async function tabTo(text) {
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.textContent?.trim() ?? "");
    if (focused === text) return;
  }
  throw new Error(`Tab never reached "${text}"`);
}

const PEOPLE_PASSWORD = "a long enough password";
/** Adds `email` as a person and a member of the demo workspace with `role`; returns their user id. */
async function member(email, role) {
  await createUser(freya.dir, email, role, PEOPLE_PASSWORD);
  const added = await fetch(`${base}/v1/workspaces/${dev.workspace_id}/members`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${dev.api_key}` },
    body: JSON.stringify({ email, role }),
  });
  assert.equal(added.status, 201, await added.clone().text());
  return (await added.json()).user_id;
}

step("a real viewer, signed in with the keyboard alone, reads every page and sees no edit controls", async () => {
  await member("viewer@example.com", "viewer");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Email").waitFor();
  // The keyboard alone: into the form, through it, and on to a page of the navigation.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "email", "Tab reaches Email first");
  await page.keyboard.type("viewer@example.com");
  await page.keyboard.press("Tab");
  await page.keyboard.type(PEOPLE_PASSWORD);
  await page.keyboard.press("Enter");
  await page.getByText("Your role: viewer").waitFor();
  await tabTo("Agents");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Agents", exact: true }).waitFor();
  await page.getByRole("link", { name: "Demo agent" }).waitFor();
  assert.equal(await page.getByRole("link", { name: "New agent" }).count(), 0, "no New agent for a viewer");
  await page.getByRole("link", { name: "Demo agent" }).click();
  await page.getByText("your role (viewer) cannot change it").waitFor();
  assert.equal(await page.getByRole("button", { name: "Save agent" }).count(), 0);
  assert.equal(await page.getByLabel("Name", { exact: true }).getAttribute("readonly"), "");
  await nav("Numbers").click();
  await page.getByRole("cell", { name: dev.phone_number, exact: true }).waitFor();
  assert.equal(await page.getByRole("button", { name: "New number" }).count(), 0);
  assert.equal(await page.getByRole("button", { name: /^(Edit|Delete) / }).count(), 0);
  await nav("Workflows").click();
  await page.getByRole("link", { name: "Greeter" }).waitFor();
  assert.equal(await page.getByRole("link", { name: "New workflow" }).count(), 0);
  assert.equal(await page.getByRole("button", { name: "Publish" }).count(), 0);
  // Providers are read by every member, their secrets masked; testing one needs an editor.
  await nav("Providers").click();
  const trunk = page.getByRole("row").filter({ hasText: "e2e trunk" });
  await trunk.getByTestId("health").waitFor();
  assert.equal(await page.getByRole("button", { name: /^Test / }).count(), 0, "no Test for a viewer");
  await axe("providers (viewer)");
  await nav("Members").click();
  await page.getByRole("cell", { name: "viewer@example.com", exact: true }).waitFor();
  assert.equal(await page.getByRole("button", { name: "Add member" }).count(), 0);
  assert.equal(await page.getByRole("button", { name: /^Remove / }).count(), 0);
  assert.equal(await page.getByRole("combobox", { name: /^Role of / }).count(), 0);
  // Admin pages say why they are empty instead of asking for a refusal.
  for (const [name, says] of [
    ["API keys", "can list, create or revoke keys; your role is viewer"],
    ["Audit log", "can read the audit log; your role is viewer"],
    ["Webhooks", "can see webhook subscriptions and their deliveries"],
  ]) {
    await nav(name).click();
    await page.getByRole("note").filter({ hasText: says }).waitFor();
    await axe(`${name} (viewer)`);
  }
  assert.equal(await page.getByRole("button", { name: "Create key" }).count(), 0);
});

step("an editor tests a trunk; demoted while editing, their save is refused with the reason and the form follows", async () => {
  const editorId = await member("editor@example.com", "editor");
  await signInAs("editor@example.com", PEOPLE_PASSWORD, "editor");
  await nav("Providers").click();
  await page.getByRole("row").filter({ hasText: "e2e trunk" }).getByRole("button", { name: "Test e2e trunk" }).waitFor();
  await nav("Agents").click();
  await page.getByRole("link", { name: "Demo agent" }).click();
  await page.getByRole("button", { name: "Save agent" }).waitFor();
  // An owner makes them a viewer while the form is open: the page still offers Save.
  const demoted = await fetch(`${base}/v1/workspaces/${dev.workspace_id}/members/${editorId}`, {
    method: "PATCH",
    headers: { "content-type": "application/json", authorization: `Bearer ${dev.api_key}` },
    body: JSON.stringify({ role: "viewer" }),
  });
  assert.equal(demoted.status, 200, await demoted.clone().text());
  expected403 = 1;
  await page.getByRole("button", { name: "Save agent" }).click();
  await page.getByRole("alert").filter({ hasText: "Your role does not allow this: this needs the `editor` role" }).waitFor();
  // The refusal re-reads the role: the form becomes read-only, the explanation stays.
  await page.getByText("Your role: viewer").waitFor();
  await page.getByText("your role (viewer) cannot change it").waitFor();
  assert.equal(await page.getByRole("button", { name: "Save agent" }).count(), 0);
  await axe("agent save refused (demoted)");
  await signInAs(dev.admin_email, dev.admin_password, "owner");
});

step("a token about to expire is refreshed in the background", async () => {
  // The stored token is made to look 30 s from expiry: the page refreshes it at once, and only
  // the refresh's answer stores an expiry further off. (The token itself may be the same string:
  // one issued in the same second as the sign-in before has the same claims.)
  await page.evaluate(() => {
    const stored = JSON.parse(sessionStorage.getItem("freya.session"));
    sessionStorage.setItem("freya.session", JSON.stringify({ ...stored, expiresAt: new Date(Date.now() + 30_000).toISOString() }));
  });
  await page.reload();
  await page.waitForFunction(
    (old) => {
      const stored = JSON.parse(sessionStorage.getItem("freya.session") ?? "null");
      return stored && Date.parse(stored.expiresAt) > Date.now() + 120_000;
    },
  );
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem("freya.session")).token);
  const answer = await fetch(`${base}/v1/workspaces`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(answer.status, 200, "the new token works");
  await nav("Calls").click();
  await page.getByRole("heading", { name: "Calls" }).waitFor();
});

step("a client-side route opened directly works, and sign-out forgets the token", async () => {
  await page.goto(`${base}/edges`);
  await page.getByRole("heading", { name: "Edges" }).waitFor();
  await page.getByRole("cell", { name: dev.edges[0].id }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Email").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("freya.session")), null);
  await page.reload();
  await page.getByLabel("Email").waitFor();
});

let failed = false;
try {
  for (const { name, fn } of steps) {
    const started = Date.now();
    try {
      await fn();
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (err) {
      failed = true;
      console.log(`FAIL ${name}\n${err.stack ?? err}`);
      await page.screenshot({ path: join(tmpdir(), "freya-dashboard-e2e-failure.png") }).catch(() => {});
      console.log(`(screenshot: ${join(tmpdir(), "freya-dashboard-e2e-failure.png")})`);
      break;
    }
  }
  if (!failed) {
    try {
      assert.deepEqual(consoleErrors, [], "errors in the browser console");
      console.log(`ok   no console errors; axe passed on ${checked.length} views: ${checked.join(", ")}`);
    } catch (err) {
      failed = true;
      console.log(`FAIL ${err.message}`);
    }
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  if (failed) console.log(`freya dev's log:\n${freya.log.join("").slice(-4000)}`);
  await freya.stop();
}
process.exit(failed ? 1 : 0);
