// The initial load's size, gzipped: index.html and every script, style sheet and preload it
// names, each compressed as a server would (gzip -9). Fails above the budget (500 kB).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET = 500_000;
const dist = new URL("../dist/", import.meta.url).pathname;
const html = readFileSync(join(dist, "index.html"), "utf8");
const files = ["index.html", ...[...html.matchAll(/(?:src|href)="\/([^"]+\.(?:js|css))"/g)].map((m) => m[1])];
let total = 0;
for (const file of files) {
  const raw = readFileSync(join(dist, file));
  const gz = gzipSync(raw, { level: 9 }).length;
  total += gz;
  console.log(`${file.padEnd(40)} ${String(raw.length).padStart(9)} B  ${String(gz).padStart(8)} B gzipped`);
}
console.log(`initial load: ${total} B gzipped (budget ${BUDGET} B)`);
if (total > BUDGET) {
  console.error("over budget");
  process.exit(1);
}
