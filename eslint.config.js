import { defineConfig, globalIgnores } from "eslint/config";
import eslint from "@eslint/js";
import tseslint from "typescript-eslint";

/** A package is used through its public entry only, never another package's files. */
const PACKAGE_BOUNDARY = [
  {
    group: ["@rockraft/*/src/*", "@rockraft/*/dist/*", "rockraft/src/*", "rockraft/dist/*"],
    message: "import a package through its public entry",
  },
  {
    group: ["../../*/src/*", "../../../packages/*", "../../packages/*"],
    message: "import another package through its public entry, not its files",
  },
];

export default defineConfig(
  globalIgnores(["**/dist/**", "**/gen/**", "**/coverage/**", "**/node_modules/**"]),
  eslint.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ["*.config.ts", "*.config.js"] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
    },
  },
  {
    // vitest's asymmetric matchers (expect.any, expect.stringMatching) are typed `any`.
    files: ["**/test/**/*.ts"],
    rules: { "@typescript-eslint/no-unsafe-assignment": "off" },
  },
  {
    // A package is used through its public entry only, never another package's files.
    files: ["packages/*/src/**/*.ts", "apps/*/src/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: PACKAGE_BOUNDARY,
        },
      ],
    },
  },
  {
    // The arrows (docs/architecture.md): raft-core is pure. No I/O, timers, clock,
    // randomness or process of its own; the caller brings them (its PRNG is injected).
    files: ["packages/raft-core/src/**/*.ts"],
    rules: {
      "no-restricted-globals": [
        "error",
        ...[
          "setTimeout",
          "setInterval",
          "setImmediate",
          "queueMicrotask",
          "process",
          "performance",
        ].map((name) => ({ name, message: "raft-core is pure: the caller drives time and I/O" })),
      ],
      "no-restricted-properties": [
        "error",
        { object: "Math", property: "random", message: "use the injected Prng" },
        { object: "Date", property: "now", message: "raft-core counts ticks, it has no clock" },
      ],
      "no-restricted-syntax": [
        "error",
        { selector: "NewExpression[callee.name='Date']", message: "raft-core has no clock" },
      ],
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            ...PACKAGE_BOUNDARY,
            {
              group: ["node:*", "fs", "net", "http*", "child_process", "timers"],
              message: "raft-core does no I/O",
            },
          ],
        },
      ],
    },
  },
  { files: ["**/*.js", "**/*.mjs"], extends: [tseslint.configs.disableTypeChecked] },
);
