// Bundles airbyte-webapp's classic connector form code (core/form/schemaToFormBlock.ts, schemaToYup.ts) with
// harness.ts into out.cjs. The webapp's source is not part of this repository: AIRBYTE_WEBAPP_SRC names a checkout
// of airbytehq/airbyte-platform's airbyte-webapp/src (see check.sh).
import * as esbuild from "esbuild";
import * as path from "path";
import { fileURLToPath } from "url";

const here = path.dirname(fileURLToPath(import.meta.url));
const src = process.env.AIRBYTE_WEBAPP_SRC;
if (!src) throw new Error("AIRBYTE_WEBAPP_SRC is not set (airbyte-platform's airbyte-webapp/src)");
const alias = {
  name: "webapp-paths",
  setup(build) {
    build.onResolve({ filter: /^\.\/FormBuildError$/ }, () => ({ path: path.join(here, "stubs/FormBuildError.ts") }));
    build.onResolve({ filter: /^(core|area|components)\// }, (args) => {
      if (args.path === "core/api/types/AirbyteClient" || args.path === "core/domain/connector") {
        return { path: path.join(here, "stubs/empty.ts") };
      }
      return { path: path.join(src, args.path + (args.path.endsWith(".ts") ? "" : ".ts")) };
    });
  },
};
await esbuild.build({
  entryPoints: [path.join(here, "harness.ts")],
  bundle: true,
  platform: "node",
  outfile: path.join(here, "out.cjs"),
  plugins: [alias],
  logLevel: "warning",
  nodePaths: [path.join(here, "node_modules")],
});
