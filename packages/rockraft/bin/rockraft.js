#!/usr/bin/env node
import process from "node:process";
import { main } from "../dist/cli.js";

const code = await main(
  process.argv.slice(2),
  (line) => process.stdout.write(`${line}\n`),
  (line) => process.stderr.write(`${line}\n`),
);
process.exit(code);
