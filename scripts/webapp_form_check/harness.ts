// Renders source-pendo's spec with airbyte-webapp's classic connector form code and checks what it submits.
//   node out.cjs SPEC.json CASES.json
// SPEC.json: the connectionSpecification; CASES.json: [{"name", "config", "valid"}]. Prints one line per field
// and per case; exits 1 on the first rule broken (see check.sh for the rules).
import * as fs from "fs";

import { jsonSchemaToFormBlock } from "core/form/schemaToFormBlock";
import { buildYupFormForJsonSchema } from "core/form/schemaToYup";

const [specFile, casesFile] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specFile, "utf8"));
const cases: Array<{ name: string; config: any; valid: boolean }> = JSON.parse(fs.readFileSync(casesFile, "utf8"));
// the form wraps a connector's spec as the webapp's source form does (useBuildForm.tsx)
const schema: any = {
  type: "object",
  properties: { name: { type: "string" }, connectionConfiguration: spec },
  required: ["name", "connectionConfiguration"],
};
let failures = 0;
const fail = (message: string) => {
  failures += 1;
  console.log(`FAIL ${message}`);
};

let block: any;
try {
  block = jsonSchemaToFormBlock(schema);
} catch (e: any) {
  console.log(`FAIL the form cannot be built: ${e.name} ${e.message}`);
  process.exit(1);
}

// every field the form renders, with what it renders it as
const fields: Record<string, any> = {};
const walk = (b: any, path: string) => {
  const here = path ? `${path}.${b.fieldKey}` : b.fieldKey;
  fields[here] = b;
  const kind =
    b._type === "formCondition"
      ? `formCondition[${b.selectionKey}: ${JSON.stringify(b.selectionConstValues)}]`
      : b._type === "formItem"
        ? `formItem/${b.type}${b.itemType ? "<" + b.itemType + ">" : ""}${b.enum ? " enum" : ""}${b.multiline ? " multiline" : ""}${b.isSecret ? " secret" : ""}`
        : b._type;
  console.log(`field ${here}: ${kind}`);
  if (b._type === "formGroup") b.properties.forEach((p: any) => walk(p, here));
  if (b._type === "objectArray") b.properties.properties.forEach((p: any) => walk(p, `${here}[]`));
  if (b._type === "formCondition") {
    b.conditions.forEach((c: any, i: number) => c.properties.forEach((p: any) => walk(p, `${here}<${b.selectionConstValues[i]}>`)));
  }
};
walk(block, "");

// rules: nothing rendered as an untyped text box; JSON typed in text areas; the filter value a dropdown of kinds
for (const [path, b] of Object.entries(fields)) {
  if (b._type === "formItem" && !b.type) fail(`${path} has no type: an unchecked text box (and SchemaForm renders nothing)`);
}
for (const name of ["source", "pipeline", "schema"]) {
  const b = fields[`connectionConfiguration.custom_aggregations[].${name}`];
  if (!b || !b.multiline) fail(`custom_aggregations[].${name} is not a multi-line text area`);
}
const value = fields["connectionConfiguration.filters[].value"];
if (!value || value._type !== "formCondition") fail("filters[].value is not a dropdown of value kinds");

// what the form submits: each valid case passes and comes back with every value it held (cast, as on submit)
const yupSchema = buildYupFormForJsonSchema(schema, block, ((m: { id: string }) => m.id) as any);
const contains = (whole: any, part: any): boolean =>
  part !== null && typeof part === "object"
    ? whole !== null && typeof whole === "object" && Object.keys(part).every((k) => contains(whole[k], part[k]))
    : whole === part;
for (const c of cases) {
  const values = { name: "pendo", connectionConfiguration: c.config };
  let errors: string[] = [];
  try {
    yupSchema.validateSync(values, { abortEarly: false });
  } catch (e: any) {
    errors = e.errors;
  }
  if (c.valid && errors.length) fail(`case ${c.name}: rejected ${JSON.stringify(errors)}`);
  else if (!c.valid && !errors.length) fail(`case ${c.name}: accepted, expected a rejection`);
  else if (c.valid) {
    const submitted = yupSchema.cast(values).connectionConfiguration;
    if (!contains(submitted, c.config)) fail(`case ${c.name}: submitted ${JSON.stringify(submitted)}`);
    else console.log(`case ${c.name}: valid, submitted as entered`);
  } else console.log(`case ${c.name}: rejected ${JSON.stringify(errors)}`);
}
console.log(failures ? `webapp form check: ${failures} failure(s)` : "webapp form check: OK");
process.exit(failures ? 1 : 0);
