// Starts a real `freya dev` (free ports, a throw-away data directory) for the end-to-end test,
// and runs `freya call` against it.
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const here = new URL(".", import.meta.url).pathname;

/** The `freya` binary: FREYA_BIN, or the debug build in CARGO_TARGET_DIR or the workspace's target/. */
export function freyaBin() {
  if (process.env.FREYA_BIN) return process.env.FREYA_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? resolve(here, "../../../target");
  return join(target, "debug", "freya");
}

function freeTcpPort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function freeUdpPort() {
  return new Promise((ok, fail) => {
    const s = createSocket("udp4");
    s.once("error", fail);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A running `freya dev`; `stop()` ends it and removes its data. */
export async function startFreyaDev() {
  const bin = freyaBin();
  if (!existsSync(bin)) throw new Error(`no freya binary at ${bin}: run cargo build --bin freya (or set FREYA_BIN)`);
  const dir = mkdtempSync(join(tmpdir(), "freya-dashboard-e2e-"));
  const http = await freeTcpPort();
  const sip = await freeUdpPort();
  const log = [];
  const child = spawn(bin, ["dev", "--data-dir", dir, "--http", `127.0.0.1:${http}`, "--sip", `127.0.0.1:${sip}`], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => log.push(d.toString()));
  child.stderr.on("data", (d) => log.push(d.toString()));
  let exited = null;
  child.on("exit", (code) => (exited = code));
  const stop = async () => {
    if (exited === null) {
      child.kill("SIGTERM");
      for (let i = 0; i < 100 && exited === null; i++) await sleep(100);
      if (exited === null) child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // The first run on a machine adapts the offline recogniser (about half a minute).
  const deadline = Date.now() + 300_000;
  for (;;) {
    if (exited !== null) {
      await stop();
      throw new Error(`freya dev exited (${exited}):\n${log.join("")}`);
    }
    const devJson = join(dir, "dev.json");
    if (existsSync(devJson)) {
      try {
        const dev = JSON.parse(readFileSync(devJson, "utf8"));
        const ready = await fetch(`${dev.api_url}/readyz`).then((r) => r.ok, () => false);
        if (ready) return { dev, dir, log, stop };
      } catch {
        // dev.json is being written; try again
      }
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`freya dev was not ready within 5 minutes:\n${log.join("")}`);
    }
    await sleep(250);
  }
}

/** Places a real call with `freya call` (`extra` flags after the turns) and returns what it printed. */
export async function freyaCall(sipUri, says, extra = []) {
  const args = ["call", sipUri, ...says.flatMap((s) => ["--say", s]), ...extra];
  const { stdout } = await promisify(execFile)(freyaBin(), args, { timeout: 240_000 });
  return stdout;
}

/** Adds a person who can sign in, with `freya create-user` on the dev database. */
export async function createUser(dir, email, name, password) {
  const url = `sqlite://${join(dir, "freya.db")}?mode=rwc`;
  const { stdout } = await promisify(execFile)(freyaBin(), ["create-user", "--database-url", url, "--email", email, "--name", name], {
    timeout: 60_000,
    env: { ...process.env, FREYA_USER_PASSWORD: password },
  });
  return stdout;
}
