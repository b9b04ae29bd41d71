import type { LogConfig } from "@rockraft/config";
import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

/**
 * A pino logger writing to standard error (standard output is the application's), one
 * JSON line per event, or human-readable lines when `pretty` (or "auto" on a terminal).
 */
export function createLogger(config: LogConfig, nodeId: number): Logger {
  const usePretty = config.pretty === "auto" ? process.stderr.isTTY === true : config.pretty;
  const options = { level: config.level, base: { node: nodeId } };
  if (usePretty) {
    return pino(
      options,
      pretty({ destination: 2, sync: true, ignore: "pid,hostname", translateTime: "HH:MM:ss.l" }),
    );
  }
  return pino(options, pino.destination({ dest: 2, sync: false }));
}
