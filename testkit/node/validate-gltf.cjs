// Validates glTF/GLB files with the Khronos glTF validator and prints one JSON report per file:
//   node testkit/node/validate-gltf.cjs rig.glb [more.glb ...]
// Exit code 0 when every file has no error, 1 otherwise, 2 on a usage or read failure.
"use strict";

const fs = require("fs");
const validator = require("gltf-validator");

async function main(paths) {
  if (paths.length === 0) {
    console.error("usage: node validate-gltf.cjs FILE.glb [...]");
    return 2;
  }
  const reports = [];
  for (const path of paths) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(path)), {
      uri: path,
      maxIssues: 100,
    });
    reports.push({
      path,
      validatorVersion: report.validatorVersion,
      numErrors: report.issues.numErrors,
      numWarnings: report.issues.numWarnings,
      numInfos: report.issues.numInfos,
      messages: report.issues.messages,
      info: report.info,
    });
  }
  console.log(JSON.stringify(reports, null, 2));
  return reports.every((r) => r.numErrors === 0) ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(String(error));
    process.exit(2);
  },
);
